//! The system tests of the framework and what every end-to-end test shares.
//!
//! - [`fixture`]: the small app the framework's system tests (`tests/tests/`) run against,
//!   served by the `fixture` binary with the extra route of [`batch_routes`];
//! - [`TestDir`] and [`Server`]: a service binary as a child process on a free port with a
//!   temporary data dir;
//! - [`Client`] and [`Resp`]: the one HTTP client of the tests, and [`Ledger`]: the fixture's
//!   routes as calls of it;
//! - [`Browser`]: a headless Chromium over WebDriver, for the console's test;
//! - [`free_port`], [`free_ports`] and [`SplitMix`] (a deterministic workload on every run).

mod client;
mod fixture_app;
mod fixture_routes;
mod ledger;
mod service;
mod webdriver;

use std::net::TcpListener;

pub use client::{Client, Resp};
pub use fixture_app::fixture;
pub use fixture_routes::batch_routes;
pub use ledger::Ledger;
pub use service::{Server, TestDir};
pub use webdriver::Browser;

/// A port that is free at the time of asking (it may be taken before it is used).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A port `p` with `p .. p + n` all free at the time of asking.
pub fn free_ports(n: u16) -> u16 {
    for _ in 0..100 {
        let p = free_port();
        let all_free = p.checked_add(n).is_some()
            && (0..n).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok());
        if all_free {
            return p;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// The framework's deterministic generator (splitmix64): the same workload on every run.
pub use stateful_runtime::mix::SplitMix;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_spreads() {
        let (mut a, mut b) = (SplitMix(7), SplitMix(7));
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let distinct: std::collections::HashSet<_> = xs.iter().map(|x| x % 10).collect();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn the_fixture_app_has_its_lambdas_handlers_and_routes() {
        use stateful_runtime::Lambda;
        let app = fixture::app();
        let names: Vec<&str> = app.lambdas().iter().map(|l| l.name).collect();
        assert_eq!(names, ["Account", "Transfer", "Mailbox"]);
        let handlers: Vec<&str> = fixture::Account::HANDLERS.iter().map(|h| h.name).collect();
        assert_eq!(
            handlers,
            [
                "create",
                "open",
                "deposit",
                "withdraw",
                "balance",
                "transfer",
                "set_balance",
                "careless_withdraw",
                "pay_then_panic",
                "deposit_notify",
                "deposit_notify_later",
                "explode"
            ]
        );
        assert_eq!(fixture::Account::HANDLERS[1].route, None);
        assert_eq!(
            fixture::Transfer::HANDLERS[0].route,
            Some(("POST", "/transfers/{key}/{from}/{to}/{amount}"))
        );
        assert!(
            fixture::GRAPH_DOT.contains("diamond"),
            "transactions are AND-nodes"
        );
    }
}
