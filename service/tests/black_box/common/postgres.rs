//! A throwaway PostgreSQL server on 127.0.0.1 for the tests: its own data
//! directory, started with Debian's server binaries (`scripts/test-deps.sh`
//! installs them), stopped and removed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A running server; `pg_ctl stop` when dropped.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    databases: AtomicU32,
}

/// The server binaries: `MAILBRIDGE_TEST_PG_BIN`, or the newest Debian install.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MAILBRIDGE_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect(
        "PostgreSQL server binaries are missing: run `bash scripts/test-deps.sh` first \
         (or set MAILBRIDGE_TEST_PG_BIN)",
    )
}

/// PostgreSQL refuses to run as root: as root, run its tools as `postgres`.
fn as_owner(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postgres {
    /// initdb + start on a free loopback port (fsync off: these data are thrown away).
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("mailbridge-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        // The server's user must own its directory.
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let mut initdb = as_owner(&bin.join("initdb"));
        initdb
            .args([
                "--auth=trust",
                "--username=mailbridge",
                "--encoding=UTF8",
                "-D",
            ])
            .arg(&data);
        run(initdb, "initdb");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync=off -c max_connections=100",
            dir.path().display()
        );
        let mut start = as_owner(&bin.join("pg_ctl"));
        start
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.path().join("server.log"));
        run(start, "pg_ctl start");
        Postgres {
            bin,
            dir,
            port,
            databases: AtomicU32::new(0),
        }
    }

    /// A new empty database on this server, as a `postgres://` URL.
    pub fn database(&self) -> String {
        let name = format!("mb{}", self.databases.fetch_add(1, Ordering::SeqCst));
        let mut create = Command::new(self.bin.join("createdb"));
        create.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "mailbridge",
            &name,
        ]);
        run(create, "createdb");
        format!(
            "postgres://mailbridge:unused@127.0.0.1:{}/{name}",
            self.port
        )
    }

    /// The SQL dump (`pg_dump`) of the database a [`Postgres::database`] URL names.
    pub fn dump(&self, url: &str) -> String {
        let name = url.rsplit('/').next().unwrap_or_default();
        let out = Command::new(self.bin.join("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "mailbridge",
                name,
            ])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server now (e.g. to see how the service copes).
    pub fn stop(&self) {
        let mut stop = as_owner(&self.bin.join("pg_ctl"));
        stop.args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
            .arg(self.dir.path().join("data"));
        let _ = stop.output();
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
