//! `casa::rules::RuleSet::parse` on arbitrary text (lossy UTF-8): a bad `rules.json` must be a
//! located error, never a panic. A set that loads is evaluated once on the empty context.
#![no_main]

use casa::{context::Context, rules::RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match RuleSet::parse(&text, "fuzz.json") {
        Ok(set) => {
            let _ = set.matching_all(&Context::default());
            let _ = set.summary();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
