"""Email: templates, rendering and transports (SMTP or a folder of `.eml` files)."""
