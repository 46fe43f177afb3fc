use stateful_runtime::prelude::*;

async fn helper() -> Result<(), Rejection> {
    transaction! {
        Ok(())
    }
}

fn main() {}
