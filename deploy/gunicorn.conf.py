"""gunicorn settings for the intake: `gunicorn -c deploy/gunicorn.conf.py`.

The application is `intake:create_app()`, configured from the INTAKE_*
environment variables. Logs carry no client address, no user agent, no
referrer, no query string and no time: the access log is the method, path,
status and size; the error log has no timestamps.
"""

import multiprocessing
import os
import re

from gunicorn import glogging

wsgi_app = "intake:create_app()"
bind = os.environ.get("INTAKE_BIND", "127.0.0.1:8000")

# Threads keep a slow Tor upload from holding a whole process. A no-JavaScript
# upload holds a thread until its body has arrived: its body is plaintext, so
# nginx streams it through instead of buffering it to disk, and a source on a
# slow circuit holds that thread for minutes (20 MiB at 20 KB/s: 17 minutes).
# The upload API's chunks are ciphertext, which nginx receives whole before it
# passes them on (deploy/nginx.conf), so they hold a thread for milliseconds.
# 3 processes x 128 threads hold 250 slow form uploads with room to spare for
# everyone else (bench/slow_sources.py: 500 slow sources, half on each path).
# Threads start only as needed (ThreadPoolExecutor), and gunicorn and nginx
# together held those 500 in 500 to 725 MiB. Measured against gevent in
# README.md, "Performance": gevent held them too, in twice the memory, and
# every long C call there (age, fsync, SQLite's busy wait, Argon2id) would
# freeze every upload of the process.
worker_class = "gthread"
workers = int(os.environ.get("INTAKE_WORKERS", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("INTAKE_THREADS", 128))
timeout = 120
graceful_timeout = 30
keepalive = 5

# gunicorn 25+ opens a control socket in $HOME by default: nothing here uses it,
# and every instance on a host would share the one path.
control_socket_disable = True

# Request-line and header limits: a form needs little; hostile headers get a 400.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# No address (%(h)s), no time (%(t)s), no user agent (%(a)s), no referrer (%(f)s),
# no query string: method, path, status and response size only.


class AccessLogger(glogging.Logger):
    """The access log without upload ids: they are capabilities, not for logs."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = re.sub(r"(/api/v1/uploads/)[^/]+", r"\1-", atoms["U"])
        return atoms


logger_class = AccessLogger
accesslog = "-"
access_log_format = '"%(m)s %(U)s" %(s)s %(B)s'
errorlog = "-"
loglevel = "info"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_console"], "propagate": False},
    },
    "handlers": {
        "error_console": {"class": "logging.StreamHandler", "formatter": "plain",
                          "stream": "ext://sys.stderr"},
        "access_console": {"class": "logging.StreamHandler", "formatter": "plain",
                           "stream": "ext://sys.stdout"},
    },
    "formatters": {"plain": {"format": "%(levelname)s [%(process)d] %(name)s: %(message)s"}},
}



def on_starting(server):
    """Bring the database schema up to date once, before any worker starts."""
    from intake.config import settings_from_env
    from intake.storage import db

    db.upgrade(settings_from_env().database_url)
