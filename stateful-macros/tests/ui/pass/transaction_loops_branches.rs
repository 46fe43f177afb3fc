//! Transactions inside loops, branches, closures and nested blocks; `.on_failure(|e| ..)`.
use stateful_runtime::prelude::*;

#[app]
mod store {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Shelf {
        async fn take(ctx: &mut Ctx<Self>, n: i64) -> Result<i64, Rejection> {
            *ctx.state_mut() -= n;
            Ok(*ctx.state())
        }
    }

    #[lambda(key = String, state = Vec<String>)]
    impl Picker {
        async fn pick(ctx: &mut Ctx<Self>, items: Vec<String>, all: bool) -> Result<u32, Rejection> {
            let mut done = 0;
            for item in &items {
                if all {
                    done += transaction! {
                        ctx.call::<Shelf>(item).take(1).await?;
                        ctx.state_mut().push(item.clone());
                        Ok(1)
                    }
                    .on_failure(|_e: Rejection| Ok::<u32, Rejection>(0))?;
                } else {
                    let once = async {
                        {
                            transaction! {
                                match ctx.call::<Shelf>(item).take(2).await? {
                                    left if left < 0 => Err(Rejection::new("empty")),
                                    _ => Ok(()),
                                }
                            }
                            .on_failure(|e| Err(e))
                        }
                    };
                    once.await?;
                }
            }
            Ok(done)
        }
    }
}

fn main() {
    let tx = store::GRAPH_JSON.matches("\"kind\": \"transaction\"").count();
    assert_eq!(tx, 2, "{}", store::GRAPH_JSON);
}
