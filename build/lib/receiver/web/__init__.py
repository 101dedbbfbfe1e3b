"""The HTTP edge: the webhook intake, signature verification, the server protocol.

Every HTTP status the receiver answers is decided here.
"""
