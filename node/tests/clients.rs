//! Real clients against the binary: redis-cli (one-shot and interactive, which loads COMMAND
//! DOCS for its hints), redis-benchmark, and the Rust `redis` crate in RESP2 and RESP3.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Node;

fn redis_cli(node: &Node, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &node.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed (apt-get install redis-tools)");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_one_shot() {
    let node = Node::start();
    assert_eq!(redis_cli(&node, &["PING"]), "PONG\n");
    assert_eq!(redis_cli(&node, &["ECHO", "hello world"]), "hello world\n");
    assert_eq!(redis_cli(&node, &["CLIENT", "SETNAME", "cli"]), "OK\n");
    assert!(
        redis_cli(&node, &["COMMAND", "COUNT"])
            .trim()
            .parse::<u32>()
            .unwrap()
            > 10
    );
    assert!(redis_cli(&node, &["INFO", "server"]).contains("redis_version:"));
    assert_eq!(
        redis_cli(&node, &["CONFIG", "GET", "port"]),
        format!("port\n{}\n", node.port)
    );
    assert_eq!(redis_cli(&node, &["-3", "PING"]), "PONG\n");
    assert!(redis_cli(&node, &["-3", "HELLO", "3"]).contains("crdtkv"));
    let err = redis_cli(&node, &["NOSUCH"]);
    assert!(err.contains("ERR unknown command 'NOSUCH'"), "{err}");
}

#[test]
fn redis_cli_with_password() {
    let node = Node::builder().password("pw").start();
    assert_eq!(
        redis_cli(&node, &["-a", "pw", "--no-auth-warning", "PING"]),
        "PONG\n"
    );
    assert!(redis_cli(&node, &["PING"]).contains("NOAUTH"));
    assert!(redis_cli(&node, &["-a", "bad", "--no-auth-warning", "PING"]).contains("NOAUTH"));
}

/// An interactive program on a pseudo-terminal (through util-linux `script`), driven like a
/// person at a keyboard: wait for some output, type a line.
struct Terminal {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn spawn(command: &str) -> Terminal {
        // A fixed window size spares line editors the cursor-position queries no one answers.
        let shell = format!("stty cols 200 rows 50; {command}");
        let mut child = Command::new("script")
            .args(["-qec", &shell, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux) is installed");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            child,
            stdin,
            output,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` appears `count` times in the output (a hang fails the test).
    fn wait_for(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared in:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `line` and presses Enter (a raw-mode terminal sends CR).
    fn type_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\r").as_bytes())
            .unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Interactive redis-cli fetches COMMAND DOCS at start for its hints and HELP; it must parse
/// ours and keep working.
#[test]
fn redis_cli_interactive() {
    let node = Node::start();
    let mut term = Terminal::spawn(&format!("redis-cli -h 127.0.0.1 -p {}", node.port));
    let prompt = format!("127.0.0.1:{}>", node.port);
    term.wait_for(&prompt, 1);
    term.type_line("PING");
    term.wait_for("PONG", 1);
    term.type_line("ECHO interactive");
    term.wait_for("\"interactive\"", 1);
    // HELP shows the summary that came from COMMAND DOCS.
    term.type_line("HELP PING");
    term.wait_for("Returns the server's liveliness response.", 1);
    term.type_line("quit");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = term.child.try_wait().unwrap() {
            assert!(
                status.success(),
                "redis-cli exited with {status}:\n{}",
                term.text()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis-cli did not quit:\n{}",
            term.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn redis_benchmark_runs() {
    let node = Node::start();
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &node.port.to_string(),
            "-t",
            "ping",
            "-n",
            "2000",
            "-c",
            "8",
            "-P",
            "4",
            "-q",
        ])
        .output()
        .expect("redis-benchmark is installed (apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("PING_INLINE") && text.contains("PING_MBULK"),
        "{text}"
    );
}

#[test]
fn redis_crate_resp2_and_resp3() {
    let node = Node::start();
    let mut con = node.redis();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let echo: Vec<u8> = redis::cmd("ECHO")
        .arg(&b"\x00bin\xff"[..])
        .query(&mut con)
        .unwrap();
    assert_eq!(echo, b"\x00bin\xff");
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("rs")
        .query(&mut con)
        .unwrap();
    let name: Option<String> = redis::cmd("CLIENT").arg("GETNAME").query(&mut con).unwrap();
    assert_eq!(name.as_deref(), Some("rs"));
    let config: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(&mut con)
        .unwrap();
    assert_eq!(config["port"], node.port.to_string());
    let info: redis::InfoDict = redis::cmd("INFO").query(&mut con).unwrap();
    assert_eq!(info.get::<String>("role").as_deref(), Some("master"));
    let err = redis::cmd("NOSUCH").query::<String>(&mut con).unwrap_err();
    assert!(err.to_string().contains("unknown command"), "{err}");
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);

    let client = redis::Client::open(format!("redis://{}/?protocol=resp3", node.addr())).unwrap();
    let mut con3 = client.get_connection().unwrap();
    let pong: String = redis::cmd("PING").query(&mut con3).unwrap();
    assert_eq!(pong, "PONG");
    let hello: HashMap<String, redis::Value> = redis::cmd("HELLO").arg(3).query(&mut con3).unwrap();
    assert_eq!(hello["proto"], redis::Value::Int(3));
    let config: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut con3)
        .unwrap();
    assert_eq!(config["maxclients"], "10000");
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("ECHO").arg(i);
    }
    let echoed: Vec<i64> = pipe.query(&mut con3).unwrap();
    assert_eq!(echoed, (0..100).collect::<Vec<_>>());
}
