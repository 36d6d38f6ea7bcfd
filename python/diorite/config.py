"""Server settings, as the CLI, the environment and the Python API give them."""

from __future__ import annotations

from dataclasses import dataclass, field

INTERFACES = ("asgi", "asginl", "rsgi", "wsgi")
HTTP_MODES = ("auto", "1", "2")
LOOPS = ("auto", "asyncio", "uvloop")


@dataclass
class Config:
    app: str
    interface: str = "asgi"
    host: str = "127.0.0.1"
    port: int = 8000
    http: str = "auto"
    runtime_threads: int = 1
    backlog: int = 1024
    backpressure: int | None = None
    working_dir: str | None = None
    log_level: str = "info"
    log_enabled: bool = True
    factory: bool = False
    loop: str = "auto"
    http1_keep_alive: bool = True
    http2_max_concurrent_streams: int = 200
    websockets: bool = True
    ws_max_message_size: int = 16 * 1024 * 1024
    shutdown_timeout: float = 30.0
    blocking_threads: int = 32
    workers: int = 1
    respawn_failed_workers: bool = False
    respawn_interval: float = 3.5
    workers_lifetime: float | None = None
    workers_max_rss: int | None = None
    workers_kill_timeout: float = 30.0
    pid_file: str | None = None
    uds: str | None = None
    uds_permissions: int | None = None
    process_name: str | None = None
    env_files: list[str] = field(default_factory=list)
    reload: bool = False
    reload_paths: list[str] = field(default_factory=list)
    reload_ignore_patterns: list[str] = field(default_factory=list)

    @property
    def supervised(self) -> bool:
        """Whether a supervisor process runs the workers."""
        return (
            self.workers > 1
            or self.respawn_failed_workers
            or self.workers_lifetime is not None
            or self.workers_max_rss is not None
            or self.reload
        )

    @property
    def effective_backpressure(self) -> int:
        return self.backpressure if self.backpressure is not None else self.backlog
