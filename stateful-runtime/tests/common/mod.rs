//! What several of these test binaries share: a notes app and sums of the engine's
//! per-operator counters.
#![allow(dead_code, missing_docs)]

use stateful_runtime::{Handle, OperatorMetrics};

#[stateful_runtime::app]
pub mod notes {
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Note {
        pub text: String,
        pub edits: u32,
    }

    #[lambda(key = u64, state = Note)]
    impl Notebook {
        #[public]
        async fn write(ctx: &mut Ctx<Self>, text: String) -> Result<u32, Rejection> {
            let mut n = ctx.state_mut();
            n.text = text;
            n.edits += 1;
            Ok(n.edits)
        }

        #[public]
        async fn read(ctx: &Ctx<Self>) -> Result<Note, Rejection> {
            Ok(ctx.state().clone())
        }

        /// Writes this note's text into note `to`, holding this note meanwhile.
        #[public]
        async fn relay(ctx: &mut Ctx<Self>, to: u64) -> Result<u32, Rejection> {
            let text = ctx.state().text.clone();
            ctx.call::<Notebook>(&to).write(text).await?;
            let mut n = ctx.state_mut();
            n.edits += 1;
            Ok(n.edits)
        }
    }
}

/// `f` summed over every operator of the engine behind `handle`.
pub fn sum(handle: &Handle, f: impl Fn(&OperatorMetrics) -> u64) -> u64 {
    handle.metrics().operators.iter().map(f).sum()
}
