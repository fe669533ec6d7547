//! The OCSF validator (`evaluation/ocsf_validate.py`): every line of an `--ocsf-log` file
//! against the official OCSF 1.8.0 schema, with the packages `./setup.sh` installs.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The python of the validator's virtual environment (`./setup.sh` creates it):
/// `CASA_OCSF_PYTHON`, else `$CASA_TOOLCHAIN_DIR` (default `~/.cache/casa-toolchain`)
/// `/ocsf-venv/bin/python`.
pub fn validator_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CASA_OCSF_PYTHON") {
        return p.into();
    }
    let dir = std::env::var_os("CASA_TOOLCHAIN_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/casa-toolchain"),
        PathBuf::from,
    );
    let py = dir.join("ocsf-venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run ./setup.sh (it installs the OCSF validator's packages)",
        py.display()
    );
    py
}

/// Validate `file`: (exit code, stdout: a count per class, or one `FILE:LINE: path: problem`
/// per problem).
pub fn validate(file: &Path) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../evaluation/ocsf_validate.py");
    let o = Command::new(validator_python())
        .arg(script)
        .arg(file)
        .output()
        .expect("run the OCSF validator");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("{out}{}", String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), out)
}
