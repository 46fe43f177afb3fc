//! A mistake in a file module is reported in the file, on the user's token.
stateful_runtime::app_modules! {
    mod files_typo {
        mod order;
        mod stock;
    }
}

fn main() {}
