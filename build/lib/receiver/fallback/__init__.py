"""The iMessage -> SMS fallback: its rules, the resend outbox, and our own send path."""
