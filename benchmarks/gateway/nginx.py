"""nginx as the reference proxy: the same 90/10 split (`split_clients`) and the same mirror
(`mirror` + `mirror_request_body on`), one worker, run in the foreground from a temp dir.

The key check mirrors scoregate's `auth_mode: key`, and the access log is on, so both
proxies do the same work per request.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from benchmarks.common.children import Children, free_port, http_get, wait_until
from benchmarks.common.proc_stats import CpuProbe, children_of
from benchmarks.gateway.backends import Backends
from benchmarks.gateway.target import JSON_HEADERS, Target

_CONF = """\
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {access_log};
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 100m;
    client_body_buffer_size 128k;  # a 10 KB body stays in memory, as in scoregate
    keepalive_requests 1000000;
    upstream blue {{ server 127.0.0.1:{blue}; keepalive 64; }}
    upstream green {{ server 127.0.0.1:{green}; keepalive 64; }}
    upstream shadow {{ server 127.0.0.1:{shadow}; keepalive 64; }}
    split_clients "${{request_id}}" $deployment {{ 90% blue; * green; }}
{mirror_split}    server {{
        listen 127.0.0.1:{port};
        location = /score {{
            if ($http_authorization != "Bearer {key}") {{
                return 401 '{{"message": "missing or wrong key"}}';
            }}
{mirror}
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 5s;
            proxy_pass http://$deployment;
            add_header azureml-model-deployment $deployment;
        }}
        location = /_mirror {{
            internal;
{mirror_skip}            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header x-scoregate-mirror 1;
            proxy_read_timeout 10s;
            proxy_pass http://shadow/score;
        }}
    }}
}}
"""

_MIRROR_SPLIT = """\
    split_clients "${request_id}m" $mirrored { %d%% 1; * ""; }
"""

_MIRROR_SKIP = """\
            if ($mirrored = "") { return 204; }
"""

_MIRROR = """\
            mirror /_mirror;
            mirror_request_body on;"""


def nginx_binary() -> str:
    path = shutil.which("nginx")
    if path is None and os.path.exists("/usr/sbin/nginx"):  # sbin is not on every PATH
        path = "/usr/sbin/nginx"
    if path is None:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
    return path


def write_conf(prefix: Path, port: int, backends: Backends, key: str, mirror_percent: int,
               access_log: bool = True) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(_CONF.format(
        user="user root;\n" if os.geteuid() == 0 else "",  # workers must reach the temp dir
        prefix=prefix,
        access_log=f"{prefix}/access.log" if access_log else "off",
        blue=backends.blue.port, green=backends.green.port, shadow=backends.shadow.port,
        mirror_split=_MIRROR_SPLIT % mirror_percent if mirror_percent > 0 else "",
        mirror=_MIRROR if mirror_percent > 0 else "",
        mirror_skip=_MIRROR_SKIP if mirror_percent > 0 else "",
        port=port, key=key,
    ))
    return conf


def start_nginx(children: Children, prefix: Path, backends: Backends, key: str,
                mirror_percent: int = 0, label: str = "nginx") -> Target:
    port = free_port()
    conf = write_conf(prefix, port, backends, key, mirror_percent)
    child = children.start([nginx_binary(), "-p", str(prefix), "-c", str(conf),
                            "-g", "daemon off;"], name=label.replace(":", "-"))
    url = f"http://127.0.0.1:{port}/score"

    def up() -> bool:
        child.check_alive()
        return bool(children_of(child.pid)) and http_get(f"http://127.0.0.1:{port}/",
                                                         timeout_s=0.5) is not None

    wait_until(up, 20, f"{label} on port {port}")
    return Target(label, url, {**JSON_HEADERS, "Authorization": f"Bearer {key}"},
                  CpuProbe.with_children(child.pid), child)
