//! A file module whose file is not there: one error, on its name.
stateful_runtime::app_modules! {
    mod files_missing {
        mod nowhere;
    }
}

fn main() {}
