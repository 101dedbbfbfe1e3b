"""The dispatch core: registry, loader, context, dispatcher, worker. It knows no HTTP."""
