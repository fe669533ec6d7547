//! Pure classifiers for attack techniques seen in a single exec or open: discovery programs,
//! the dynamic loader run directly, inline interpreter code, and shell-history tampering.
//!
//! Used by [`super::facts`], which folds them into the session's durable facts. Each list is
//! written from public procedure descriptions (MITRE ATT&CK: T1082/T1033/T1057/T1016/T1049/
//! T1087 discovery, T1574.006 dynamic linker hijacking, T1059 interpreters, T1070.003 clear
//! command history), in casa's own words.

use super::{
    Heuristics,
    classify::{basename, name_in},
};

/// Programs whose purpose is to describe the host, its users, processes and network
/// (discovery). One such program is routine; many distinct ones in a session are a survey.
pub const DISCOVERY_PROGRAMS: &[&str] = &[
    "whoami",
    "id",
    "groups",
    "users",
    "who",
    "w",
    "last",
    "lastlog",
    "uname",
    "hostname",
    "hostnamectl",
    "arch",
    "ps",
    "pstree",
    "top",
    "netstat",
    "ss",
    "ip",
    "ifconfig",
    "route",
    "arp",
    "lsof",
    "getent",
    "lscpu",
    "lsblk",
    "lsmod",
    "lspci",
    "lsusb",
    "dmesg",
    "mount",
    "findmnt",
    "env",
    "printenv",
    "uptime",
    "getcap",
    "capsh",
    "nmap",
    "nc",
    "ncat",
];

/// The discovery item an exec is, if any: the program's name, `find_suid` for a search for
/// set-uid files (`find … -perm -4000`), `sudo_list` for `sudo -l`, `crontab_list` for
/// `crontab -l`.
pub fn discovery(name: &str, argv: &[String]) -> Option<String> {
    let args = || argv.iter().skip(1).map(String::as_str);
    match name {
        "find"
            if argv
                .windows(2)
                .any(|w| w[0] == "-perm" && is_setid_mode(&w[1])) =>
        {
            Some("find_suid".into())
        }
        "sudo" if args().any(|a| a == "-l" || a == "--list") => Some("sudo_list".into()),
        "crontab" if args().any(|a| a == "-l") => Some("crontab_list".into()),
        n if DISCOVERY_PROGRAMS.contains(&n) => Some(n.to_owned()),
        _ => None,
    }
}

/// A `find -perm` mode that selects set-uid or set-gid files (`-4000`, `/6000`, `u=s`).
fn is_setid_mode(mode: &str) -> bool {
    ["4000", "2000", "6000", "u=s", "g=s", "u+s", "g+s"]
        .iter()
        .any(|m| mode.contains(m))
}

/// Whether `name` is the dynamic loader (`ld-linux-x86-64.so.2`, `ld-linux.so.2`,
/// `ld-musl-x86_64.so.1`, `ld.so`).
pub fn is_dynamic_loader(name: &str) -> bool {
    name == "ld.so" || name.starts_with("ld-linux") || name.starts_with("ld-musl")
}

/// The program the dynamic loader is asked to run (`ld.so [OPTION]… PROGRAM [ARG]…`), when
/// the exec is the loader run directly.
pub fn loader_program(name: &str, argv: &[String]) -> Option<String> {
    if !is_dynamic_loader(name) {
        return None;
    }
    // Options that take a value.
    const WITH_VALUE: &[&str] = &[
        "--library-path",
        "--inhibit-rpath",
        "--audit",
        "--preload",
        "--argv0",
        "--glibc-hwcaps-prepend",
        "--glibc-hwcaps-mask",
    ];
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if a == "--" {
            return args.next().cloned();
        } else if !a.starts_with('-') {
            return Some(a.clone());
        }
    }
    None
}

/// Whether an interpreter runs code given on its command line or on standard input rather
/// than a script file: `python3 -c`, `python3 -`, `perl -e`/`-E`, `ruby -e`, `node -e`/
/// `--eval`/`-p`/`--print`, `php -r`, `lua -e`, `Rscript -e`. Only the option part of the
/// command line counts (an argument after the script is the script's own).
pub fn is_inline_code(name: &str, argv: &[String]) -> bool {
    let family = family(name);
    let flags: &[&str] = match family {
        "python" => &["-c", "-"],
        "perl" => &["-e", "-E"],
        "ruby" => &["-e"],
        "node" => &["-e", "--eval", "-p", "--print"],
        "php" => &["-r"],
        "lua" => &["-e"],
        "Rscript" => &["-e"],
        _ => return false,
    };
    for a in argv.iter().skip(1) {
        if flags.contains(&a.as_str()) {
            return true;
        }
        // Combined short options ending in the code flag: `python3 -uc`, `perl -ne`.
        if let Some(short) = a.strip_prefix('-')
            && !short.starts_with('-')
            && short.len() > 1
            && flags
                .iter()
                .any(|f| f.len() == 2 && short.ends_with(&f[1..]))
        {
            return true;
        }
        if !a.starts_with('-') {
            // The script: what follows is its own arguments.
            return false;
        }
    }
    false
}

/// The basename of the script file a shell or interpreter is given (`sh x.sh`, `bash -e
/// ./x.sh`, `python3 -u /tmp/x.py`, `perl x.pl`), when it runs one: not inline code, not a
/// module (`python3 -m venv`), not a bare or `-c` shell.
pub fn script_argument(name: &str, argv: &[String], h: &Heuristics) -> Option<String> {
    let interpreter = name_in(name, &h.interpreter_names)
        || name_in(name, &h.shell_names)
        || family(name) != name;
    if !interpreter || is_inline_code(name, argv) {
        return None;
    }
    // Options that take a value (the value is not the script).
    const WITH_VALUE: &[&str] = &["-W", "-X", "-o", "-O", "-r", "--require", "-I", "-M"];
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "-m" => return None,
            "--" => return args.next().map(|s| basename(s).to_owned()),
            a if WITH_VALUE.contains(&a) => {
                args.next();
            }
            a if a.starts_with('-') || a.starts_with('+') => {}
            a => return Some(basename(a).to_owned()),
        }
    }
    None
}

/// `python3.11` → `python`, `nodejs` → `node`, `perl5.36` → `perl`.
fn family(name: &str) -> &str {
    for f in ["python", "perl", "ruby", "node", "php", "lua", "Rscript"] {
        if name.starts_with(f) {
            return f;
        }
    }
    name
}

/// Shell and REPL history files.
pub const HISTORY_FILES: &[&str] = &[
    ".bash_history",
    ".zsh_history",
    ".zhistory",
    ".sh_history",
    ".history",
    ".ash_history",
    ".python_history",
    ".node_repl_history",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
];

/// Whether `path` is a shell or REPL history file.
pub fn is_history_file(path: &str) -> bool {
    HISTORY_FILES.contains(&basename(path))
}

/// Whether an exec tampers with a history file: removes, shreds or truncates one
/// (`rm`/`unlink`/`shred`/`truncate` with it as an argument), moves it away (`mv` with it as
/// an argument), or replaces it (`ln -sf /dev/null ~/.bash_history`, `cp /dev/null …`: it is
/// the last argument).
pub fn tampers_with_history(name: &str, argv: &[String]) -> bool {
    let operands: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match name {
        "rm" | "unlink" | "shred" | "truncate" | "mv" => {
            operands.iter().any(|a| is_history_file(a))
        }
        "ln" | "cp" => operands.last().is_some_and(|a| is_history_file(a)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn discovery_items() {
        assert_eq!(
            discovery("whoami", &argv(&["whoami"])).as_deref(),
            Some("whoami")
        );
        assert_eq!(
            discovery(
                "find",
                &argv(&["find", "/", "-perm", "-4000", "-type", "f"])
            )
            .as_deref(),
            Some("find_suid")
        );
        assert_eq!(
            discovery("find", &argv(&["find", ".", "-name", "*.rs"])),
            None
        );
        assert_eq!(
            discovery("find", &argv(&["find", ".", "-perm", "644"])),
            None
        );
        assert_eq!(
            discovery("sudo", &argv(&["sudo", "-l"])).as_deref(),
            Some("sudo_list")
        );
        assert_eq!(discovery("sudo", &argv(&["sudo", "make", "install"])), None);
        assert_eq!(discovery("cargo", &argv(&["cargo", "build"])), None);
    }

    #[test]
    fn the_loader_run_directly_names_its_program() {
        let ld = "ld-linux-x86-64.so.2";
        assert_eq!(
            loader_program(
                ld,
                &argv(&["/lib64/ld-linux-x86-64.so.2", "/dev/shm/x", "-v"])
            )
            .as_deref(),
            Some("/dev/shm/x")
        );
        assert_eq!(
            loader_program(
                ld,
                &argv(&[ld, "--library-path", "/tmp/l", "--preload", "a.so", "./p"])
            )
            .as_deref(),
            Some("./p")
        );
        assert_eq!(loader_program(ld, &argv(&[ld, "--list"])), None);
        assert_eq!(loader_program("ls", &argv(&["ls", "/tmp"])), None);
        assert!(is_dynamic_loader("ld-musl-x86_64.so.1") && !is_dynamic_loader("ldd"));
    }

    #[test]
    fn inline_code_is_the_options_not_the_scripts_arguments() {
        assert!(is_inline_code(
            "python3",
            &argv(&["python3", "-c", "print(1)"])
        ));
        assert!(is_inline_code(
            "python3.11",
            &argv(&["python3.11", "-uc", "x"])
        ));
        assert!(is_inline_code("python3", &argv(&["python3", "-"])));
        assert!(is_inline_code("perl", &argv(&["perl", "-e", "1"])));
        assert!(is_inline_code("node", &argv(&["node", "--eval", "1"])));
        assert!(is_inline_code("php", &argv(&["php", "-r", "1;"])));
        assert!(!is_inline_code(
            "python3",
            &argv(&["python3", "tool.py", "-c", "cfg"])
        ));
        assert!(!is_inline_code(
            "python3",
            &argv(&["python3", "-m", "venv", "v"])
        ));
        assert!(!is_inline_code("bash", &argv(&["bash", "-c", "ls"])));
    }

    #[test]
    fn the_script_a_shell_or_interpreter_runs() {
        let h = Heuristics::default();
        let script = |a: &[&str]| script_argument(basename(a[0]), &argv(a), &h);
        assert_eq!(script(&["sh", "/tmp/x.sh"]).as_deref(), Some("x.sh"));
        assert_eq!(
            script(&["bash", "-e", "./x.sh", "arg"]).as_deref(),
            Some("x.sh")
        );
        assert_eq!(
            script(&["python3.11", "-u", "/tmp/x.py"]).as_deref(),
            Some("x.py")
        );
        assert_eq!(
            script(&["python3", "-W", "ignore", "t.py"]).as_deref(),
            Some("t.py")
        );
        assert_eq!(script(&["python3", "-m", "venv", "v"]), None);
        assert_eq!(script(&["bash", "-c", "ls"]), None);
        assert_eq!(script(&["python3", "-c", "x"]), None);
        assert_eq!(script(&["sh"]), None);
        assert_eq!(script(&["cat", "x.sh"]), None);
    }

    #[test]
    fn history_tampering() {
        let h = "/home/u/.bash_history";
        assert!(tampers_with_history("rm", &argv(&["rm", "-f", h])));
        assert!(tampers_with_history("shred", &argv(&["shred", "-u", h])));
        assert!(tampers_with_history(
            "ln",
            &argv(&["ln", "-sf", "/dev/null", h])
        ));
        assert!(tampers_with_history("cp", &argv(&["cp", "/dev/null", h])));
        assert!(!tampers_with_history("cp", &argv(&["cp", h, "/tmp/x"])));
        assert!(!tampers_with_history("cat", &argv(&["cat", h])));
        assert!(!tampers_with_history("rm", &argv(&["rm", "/tmp/x"])));
    }
}
