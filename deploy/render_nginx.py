#!/usr/bin/env python3
"""Renders deploy/nginx/*.template into a run directory for `make stack`.

Usage: render_nginx.py RUN_DIR --listen 127.0.0.1:8080 --http 127.0.0.1:8001 --http 127.0.0.1:8002
       --ws 127.0.0.1:8011 --ws 127.0.0.1:8012 --static-root /path/to/staticfiles
Prints the path of the main config (for `nginx -c`). Only the CT_* placeholders are replaced,
so nginx's own `$variables` pass through untouched.
"""

import argparse
import getpass
import os
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "nginx"


def render(*, run_dir: Path, listen: str, http: list[str], ws: list[str], static_root: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / "nginx-tmp" / temp).mkdir(parents=True, exist_ok=True)
    site = Template((TEMPLATES / "crowdtick.conf.template").read_text()).safe_substitute(
        CT_LISTEN=listen,
        CT_HTTP_SERVERS=" ".join(f"server {address};" for address in http),
        CT_WS_SERVERS=" ".join(f"server {address};" for address in ws),
        CT_STATIC_ROOT=str(static_root),
        CT_ACCESS_LOG=str(run_dir / "nginx-access.log"),
    )
    site_conf = run_dir / "crowdtick.conf"
    site_conf.write_text(site)
    # As root nginx would hand its workers to "nobody"; keep them as the user who started the stack.
    user_line = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    main = Template((TEMPLATES / "nginx.conf.template").read_text()).safe_substitute(
        CT_RUN_DIR=str(run_dir), CT_SITE_CONF=str(site_conf), CT_USER_LINE=user_line
    )
    main_conf = run_dir / "nginx.conf"
    main_conf.write_text(main)
    return main_conf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--http", action="append", required=True, help="gunicorn address (repeat)")
    parser.add_argument("--ws", action="append", required=True, help="ASGI server address (repeat)")
    parser.add_argument("--static-root", type=Path, required=True)
    args = parser.parse_args()
    conf = render(
        run_dir=args.run_dir.resolve(), listen=args.listen, http=args.http, ws=args.ws, static_root=args.static_root
    )
    print(conf)


if __name__ == "__main__":
    main()
