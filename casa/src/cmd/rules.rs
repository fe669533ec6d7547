//! `casa rules check`, `casa rules test` and `casa rules fields`.

use std::process::ExitCode;

use crate::{
    cli::RulesCommand,
    context::{markdown_table, plain_table},
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
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        RulesCommand::Test { rules, fixtures } => {
            let path = env.path(rules.clone(), &["CASA_RULES_PATH"], super::DEFAULT_RULES);
            let set = match RuleSet::load(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let report = match self_test(&set, fixtures) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            print!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
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
            Ok(ExitCode::SUCCESS)
        }
    }
}
