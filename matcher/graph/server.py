"""A local Apache TinkerPop Gremlin Server that behaves like Neptune where it matters.

``matcher graph-server start`` fetches the server's jars from Maven Central once (with
``mvn``, from ``configs/gremlin-server/pom.xml`` into ``.graph-server/lib``), renders
``configs/gremlin-server/`` (server YAML, graph properties, init script) into
``.graph-server/`` with the host, port and paths filled in, starts the JVM in
the background, waits until it answers a Gremlin query and writes its pid to
``.graph-server/server-<port>.pid``. ``stop`` ends that pid; ``status`` says whether it answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from string import Template

from matcher.runtime.errors import GraphError
from matcher.runtime.local_service import BackgroundProcess, java_env, maven_fetch

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs" / "gremlin-server"
STATE_DIR = REPO / ".graph-server"
MAIN_CLASS = "org.apache.tinkerpop.gremlin.server.GremlinServer"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8182


@dataclass(frozen=True)
class LocalGremlinServer:
    """The local server's files: rendered config, pid file, log and saved graph under ``state_dir``; jars in ``lib``."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    state_dir: Path = STATE_DIR
    lib: Path = STATE_DIR / "lib"

    @property
    def endpoint(self) -> str:
        return f"ws://{self.host}:{self.port}/gremlin"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"server-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "server.log"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "gremlin-server.yaml"

    # --- jars ----------------------------------------------------------------------
    def fetch_jars(self) -> Path:
        """Download gremlin-server and its dependencies into ``lib`` unless already there."""
        log.info("fetching the Gremlin Server jars with Maven into %s", self.lib)
        return maven_fetch(CONFIG_DIR / "pom.xml", self.lib, "the Gremlin Server jars", GraphError)

    # --- lifecycle -----------------------------------------------------------------
    @property
    def process(self) -> BackgroundProcess:
        return BackgroundProcess(self.pid_file)

    def pid(self) -> int | None:
        """The pid in the pid file when that process is alive, else None."""
        return self.process.pid()

    def answers(self, timeout_s: float = 5.0) -> bool:
        """True when a Gremlin query (``g.inject(1)``) gets its answer."""
        from matcher.graph.connection import probe

        return probe(self.endpoint, timeout_s=timeout_s)

    def start(self, *, wait_s: float = 120.0) -> int:
        """Start the server in the background (unless it already runs) and wait until it answers; its pid."""
        running = self.pid()
        if running is not None and self.answers():
            log.info("Gremlin Server already running (pid %d) at %s", running, self.endpoint)
            return running
        if running is None and self.answers(timeout_s=2.0):
            raise GraphError(f"{self.endpoint}: another Gremlin Server answers there (not started by matcher); stop it first")
        lib = self.fetch_jars()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        values = {"host": self.host, "port": self.port, "dir": str(self.state_dir), "state": str(self.state_dir)}
        for name in ("gremlin-server.yaml", "tinkergraph.properties", "init.groovy"):
            template = Template((CONFIG_DIR / name).read_text(encoding="utf-8"))
            (self.state_dir / name).write_text(template.safe_substitute(values), encoding="utf-8")
        env = java_env()
        java = Path(env.get("JAVA_HOME", "/usr")) / "bin" / "java"
        command = [str(java) if java.exists() else "java", "-Xms256m", "-Xmx2g",
                   f"-Dlogback.configurationFile={CONFIG_DIR / 'logback.xml'}",
                   "-cp", f"{lib}/*", MAIN_CLASS, str(self.config_file)]
        process = self.process.launch(command, log_file=self.log_file, cwd=self.state_dir, env=env)
        self.process.await_ready(process, lambda: self.answers(timeout_s=2.0), wait_s=wait_s,
                                 what=f"Gremlin Server at {self.endpoint}", log_file=self.log_file, error=GraphError)
        log.info("Gremlin Server started (pid %d) at %s", process.pid, self.endpoint)
        return process.pid

    def stop(self, *, wait_s: float = 30.0) -> bool:
        """Stop the server started from this folder (by its pid); False when none was running."""
        pid = self.process.stop(wait_s=wait_s)
        if pid is not None:
            log.info("Gremlin Server (pid %d) stopped", pid)
        return pid is not None

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            if self.answers(timeout_s=2.0):
                return f"not started from {self.state_dir}, but a Gremlin server answers at {self.endpoint}"
            return f"not running (no live pid in {self.pid_file})"
        state = "answering" if self.answers() else "not answering"
        return f"running (pid {pid}) at {self.endpoint}, {state}"


def clear_graph(endpoint: str) -> None:
    """Empty the local server's graph at once (a Groovy script: local server only, not Neptune).

    ``g.V().drop()`` would do on Neptune, but TinkerTransactionGraph 3.7.3 then refuses to
    re-create some of the dropped ids ("Conflict: element modified in another transaction").
    """
    from gremlin_python.driver.client import Client

    client = Client(endpoint, "g")
    try:
        client.submit("graph.clear(); 'cleared'").all().result()
    finally:
        client.close()


def graph_server_command(action: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """``matcher graph-server fetch|start|stop|status``: a one-line result."""
    server = LocalGremlinServer(host=host, port=port)
    if action == "fetch":
        return f"Gremlin Server jars in {server.fetch_jars()}"
    if action == "start":
        pid = server.start()
        return f"Gremlin Server running (pid {pid}) at {server.endpoint}"
    if action == "stop":
        return "Gremlin Server stopped" if server.stop() else "Gremlin Server was not running"
    return f"Gremlin Server {server.status()}"
