//! scripts/test, the README's test command, sets up what the tests need on a fresh machine:
//! on a PATH without wrk it installs it with apt-get, and where it cannot, it fails naming
//! the tool and the command that installs it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// A folder for a container-like PATH: the few tools the script itself uses, and nothing else.
fn bare_path(dir: &Path) {
    for tool in ["bash", "dirname", "id", "cat", "env", "chmod"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let target = String::from_utf8_lossy(&found.stdout).trim().to_string();
        assert!(!target.is_empty(), "{tool} is on this machine");
        std::os::unix::fs::symlink(target, dir.join(tool)).unwrap();
    }
}

fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn setup_only(bin: &Path, venv: &Path) -> Output {
    Command::new(common::root().join("scripts/test"))
        .arg("--setup-only")
        .env_clear()
        .env("PATH", bin)
        .env("HOME", bin)
        .env("DEEPINSIGHT_NOTEBOOK_VENV", venv)
        .output()
        .unwrap()
}

#[test]
fn without_wrk_and_without_a_way_to_install_it_the_test_script_names_it() {
    let bin = tempfile::tempdir().unwrap();
    bare_path(bin.path());
    let out = setup_only(bin.path(), &bin.path().join("venv"));
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("'wrk' is not installed") && err.contains("apt-get install wrk"),
        "{err}"
    );
}

#[test]
fn without_wrk_the_test_script_installs_it_and_the_python_environment() {
    let bin = tempfile::tempdir().unwrap();
    bare_path(bin.path());
    // apt-get as a container has it, here a stand-in that records the call and "installs"
    // the tool into the PATH folder.
    let log = bin.path().join("apt.log");
    script(
        bin.path(),
        "apt-get",
        &format!(
            "echo \"$@\" >> '{log}'\n[ \"$1\" = install ] || exit 0\n\
             for a; do case $a in -*|install) ;; *) printf '#!/bin/sh\\n' > \"$(dirname \"$0\")/$a\"; \
             chmod 755 \"$(dirname \"$0\")/$a\";; esac; done",
            log = log.display()
        ),
    );
    // The virtual environment already there: the script checks it imports what the tests need.
    let venv = bin.path().join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    script(&venv.join("bin"), "python", "exit 0");
    let out = setup_only(bin.path(), &venv);
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("install -y -q wrk"), "{calls}");
    assert!(calls.contains("install -y -q hey"), "{calls}");
    assert!(calls.contains("install -y -q chromium"), "{calls}");
    for tool in ["wrk", "hey", "chromium"] {
        assert!(bin.path().join(tool).exists(), "{tool}");
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        venv.join("bin/python").display().to_string()
    );
}
