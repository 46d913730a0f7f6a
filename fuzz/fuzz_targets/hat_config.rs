//! Fuzz the TOML configuration loader: any text gives a table or a located, typed error, never
//! a panic; a table that loads answers a query identically through the index and the reference.
#![no_main]

use hat_match::{Facts, HostAccessTable, reference};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match HostAccessTable::from_toml("fuzz.toml", text) {
        Ok(table) => {
            for ip in ["208.90.57.32", "10.1.1.1", "2001:db8::1", "0.0.0.0"] {
                let mut facts = Facts::new(ip.parse().unwrap());
                let _ = facts.add_ptr("mail.example.com", [facts.ip()]);
                assert_eq!(table.matches(&facts), reference::matches(&table, &facts));
                assert_eq!(table.plan(facts.ip()), reference::plan(&table, facts.ip()));
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
