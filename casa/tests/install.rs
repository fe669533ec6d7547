//! `make install` into a temporary tree: every file lands where the unit and logrotate config
//! say, the paths are substituted, an existing rules file is kept, `systemd-analyze verify`
//! accepts the unit, and `make uninstall` removes what it installed.

use std::{path::Path, process::Command};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn make(target: &str, root: &Path) -> std::process::Output {
    Command::new("make")
        .arg("--no-print-directory")
        .arg("-C")
        .arg(repo())
        .arg(target)
        .arg(format!("INSTALL_BIN={}", env!("CARGO_BIN_EXE_casa")))
        .arg(format!("PREFIX={}/usr", root.display()))
        .arg(format!("SYSCONFDIR={}/etc", root.display()))
        .arg(format!("LOGDIR={}/log", root.display()))
        .output()
        .expect("make")
}

#[test]
fn install_verify_and_uninstall() {
    let root = std::env::temp_dir().join(format!("casa-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("etc/casa")).unwrap();
    std::fs::write(root.join("etc/casa/rules.json"), "{\"mine\": true}\n").unwrap();

    let o = make("install", &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unit = root.join("etc/systemd/system/casa.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(!text.contains('@'), "an unsubstituted path:\n{text}");
    assert!(
        text.contains(&format!(
            "ExecStart={}/usr/bin/casa run --rules {}/etc/casa/rules.json",
            root.display(),
            root.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "{text}"
    );
    assert!(root.join("usr/bin/casa").is_file());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/casa/rules.json")).unwrap(),
        "{\"mine\": true}\n",
        "an operator's rules file was overwritten"
    );
    let rotate = std::fs::read_to_string(root.join("etc/logrotate.d/casa")).unwrap();
    assert!(!rotate.contains('@'), "an unsubstituted path:\n{rotate}");
    assert!(
        rotate.contains(&format!("{}/log/events.log", root.display())),
        "{rotate}"
    );

    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed for this test");
    let said =
        String::from_utf8_lossy(&v.stderr).into_owned() + &String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    let o = make("uninstall", &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!unit.exists() && !root.join("usr/bin/casa").exists());
    assert!(!root.join("etc/logrotate.d/casa").exists());
    assert!(
        root.join("etc/casa/rules.json").exists(),
        "uninstall keeps the configuration"
    );
    let _ = std::fs::remove_dir_all(&root);
}
