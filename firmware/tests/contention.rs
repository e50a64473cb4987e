//! Many updlocks racing for one lock: at most one holder at any moment.

mod common;

use common::*;

const PROCESSES: usize = 8;
// Under qemu-user every start costs tens of milliseconds: fewer rounds.
const ROUNDS: usize = if EMULATED { 8 } else { 25 };

/// Each critical section creates a directory that must not exist yet and
/// removes it at the end: two holders at once would make a `mkdir` fail
/// (exit 99).
#[test]
fn only_one_holder_at_a_time() {
    let t = tempdir();
    let d = t.path();
    let inside = d.join("inside");
    let script = r#"mkdir "$1" || exit 99; rmdir "$1""#;
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..PROCESSES)
            .map(|_| {
                let inside = &inside;
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for _ in 0..ROUNDS {
                        let out = run(updlock_at(d)
                            .args(["-q", "--wait", "30s", "run", "--", "sh", "-c", script, "sh"])
                            .arg(inside));
                        if out.code() != Some(0) {
                            failures.push(format!("{out:?}"));
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a worker panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} runs failed (99: two holders at once):\n{}",
        failures.len(),
        PROCESSES * ROUNDS,
        failures.join("\n")
    );
    assert_empty(d);
}
