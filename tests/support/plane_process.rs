//! A process of the local plane (kube-apiserver, etcd…), for tests that practise its faults:
//! freeze it, stop it, start it again as `tests/cluster/up` did.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct PlaneProcess {
    name: String,
    state: PathBuf,
}

impl PlaneProcess {
    /// The process `name` of the plane whose state folder is `state` (see `Plane::state`).
    pub fn new(state: &Path, name: &str) -> PlaneProcess {
        PlaneProcess {
            name: name.to_string(),
            state: state.to_path_buf(),
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.state.join("pids").join(format!("{}.pid", self.name))
    }

    pub fn pid(&self) -> String {
        std::fs::read_to_string(self.pid_file())
            .unwrap_or_else(|e| panic!("reading the pid of {}: {e}", self.name))
            .trim()
            .to_string()
    }

    fn alive(pid: &str) -> bool {
        Path::new("/proc").join(pid).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`…).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Stops the process (SIGTERM, waiting for it to exit) and returns its command line, for
    /// `start`.
    pub fn stop(&self) -> Vec<String> {
        let pid = self.pid();
        let command_line: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
            .expect("reading the command line")
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Self::alive(&pid) {
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
        command_line
    }

    /// Starts the process again with `command_line`, in its own session and with its output
    /// appended to its log, as `tests/cluster/up` does; its pid file is updated so that
    /// `tests/cluster/down` stops the new one.
    pub fn start(&self, command_line: &[String]) {
        let log = self.state.join("logs").join(format!("{}.log", self.name));
        // Through a shell that exits at once, so the process is init's child, not this test's
        // (it outlives the test, and leaves no zombie behind).
        let output = Command::new("sh")
            .arg("-c")
            .arg(r#"log="$1"; shift; setsid "$@" >>"$log" 2>&1 </dev/null & echo $!"#)
            .arg("sh")
            .arg(&log)
            .args(command_line)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
        let pid = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert!(!pid.is_empty(), "starting {} printed no pid", self.name);
        std::fs::write(self.pid_file(), format!("{pid}\n")).expect("writing the pid");
    }
}

/// Sends SIGCONT when dropped: a failing test must not leave the plane frozen for the next one.
pub struct Thaw<'a>(pub &'a PlaneProcess);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT".to_string(), self.0.pid()])
            .status();
    }
}
