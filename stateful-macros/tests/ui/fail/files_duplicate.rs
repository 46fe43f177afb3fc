//! Two files declare a lambda of the same name: one error (lambda names are the app's
//! addresses, so they are unique across files).
stateful_runtime::app_modules! {
    mod files_duplicate {
        mod a;
        mod b;
    }
}

fn main() {}
