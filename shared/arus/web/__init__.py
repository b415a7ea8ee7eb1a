"""The web adapter: Flask app, routes, error answers, the function adapters."""
