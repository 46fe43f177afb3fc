//! The fixture app's REST API as client calls (what most system tests do first).

use serde_json::Value;

use crate::client::Client;

/// Calls of the fixture's routes that must succeed.
pub trait Ledger {
    /// Opens an account with a fresh id (`POST /accounts/create/{balance}`), returning the id.
    fn create_account(&self, balance: i64) -> String;
    /// An account's balance, read through its route (`GET /accounts/{key}`).
    fn balance(&self, account: &str) -> i64;
    /// A transfer as it stands (`GET /transfers/{key}`).
    fn transfer_view(&self, id: &str) -> Value;
}

impl Ledger for Client {
    #[track_caller]
    fn create_account(&self, balance: i64) -> String {
        self.post(&format!("/accounts/create/{balance}")).ok()["account"]
            .as_str()
            .expect("the new account's id")
            .to_owned()
    }

    #[track_caller]
    fn balance(&self, account: &str) -> i64 {
        self.get(&format!("/accounts/{account}")).ok()["balance"]
            .as_i64()
            .expect("the balance is a number")
    }

    #[track_caller]
    fn transfer_view(&self, id: &str) -> Value {
        self.get(&format!("/transfers/{id}")).ok()
    }
}
