"""``opencall serve``: run the whole appliance in this process."""

from __future__ import annotations

from opencall.config import Config


def serve(config: Config) -> int:
    """Run the server until SIGINT/SIGTERM; HTTPS uses the shared, reloadable SSLContext of opencall.tls."""
    from opencall.app import create_app
    from opencall.logs import setup_logging
    from opencall.tls import server_ssl_context

    setup_logging(config.log_file, config.log_level)
    context = server_ssl_context(config)  # makes or checks the certificate before anything listens
    app = create_app(config)
    app.run(
        host=config.server.host,
        port=config.server.port,
        ssl=context,
        single_process=True,
        access_log=config.log_level == "debug",
        motd=False,
    )
    return 0
