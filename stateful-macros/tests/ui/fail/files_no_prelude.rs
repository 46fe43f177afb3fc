//! A file module that forgets the prelude: the first error says what to add (rustc's own,
//! which follow, are about the names the prelude would have brought).
stateful_runtime::app_modules! {
    mod files_no_prelude {
        mod counter;
    }
}

fn main() {}
