//! Mistakes `#[lambda]` finds in a file module (a route naming no parameter, a `transaction!`
//! without a failure value): one error each, nothing more at the app or at the callers.
stateful_runtime::app_modules! {
    mod files_cascade {
        mod book;
        mod loan;
    }
}

fn main() {}
