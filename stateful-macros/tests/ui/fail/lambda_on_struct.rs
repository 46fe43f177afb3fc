use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String)]
    pub struct Stock {
        count: i64,
    }
}

fn main() {}
