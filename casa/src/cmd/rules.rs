//! `casa rules check`, `casa rules test` and `casa rules fields`. Exit status
//! ([`crate::exit`]): 0 valid / every case passed / the table printed, 1 invalid rules or
//! fixtures / a failing case, 3 a file that cannot be read.

use std::process::ExitCode;

use crate::{
    cli::RulesCommand,
    context::{markdown_table, plain_table},
    exit::Status,
    rules::{RuleSet, self_test},
    settings::Env,
};

pub fn rules(cmd: &RulesCommand) -> anyhow::Result<ExitCode> {
    let env = Env::load();
    match cmd {
        RulesCommand::Check { file } => {
            let path = env.path(file.clone(), &["CASA_RULES_PATH"], super::DEFAULT_RULES);
            match RuleSet::load(&path) {
                Ok(set) => {
                    for w in set.warnings() {
                        eprintln!("warning: {w}");
                    }
                    println!("{}: ok: {}", path.display(), set.summary());
                    Ok(Status::Ok.into())
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(Status::from(&e).into())
                }
            }
        }
        RulesCommand::Test { rules, fixtures } => {
            let path = env.path(rules.clone(), &["CASA_RULES_PATH"], super::DEFAULT_RULES);
            let set = match RuleSet::load(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(Status::from(&e).into());
                }
            };
            let report = match self_test(&set, fixtures) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(Status::from(&e).into());
                }
            };
            print!("{report}");
            Ok(Status::finding_if(!report.passed()).into())
        }
        RulesCommand::Fields { markdown } => {
            print!(
                "{}",
                if *markdown {
                    markdown_table()
                } else {
                    plain_table()
                }
            );
            Ok(Status::Ok.into())
        }
    }
}
