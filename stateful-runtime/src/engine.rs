//! The engine (placeholder types; being written).
use crate::lambda::Lambda;

/// The address of one lambda instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Addr {
    /// Lambda id.
    pub lambda: u16,
    /// Encoded key.
    pub key: Vec<u8>,
}

/// The per-worker, type-erased part of one lambda.
pub trait LambdaRuntime {}

struct Typed<L>(std::marker::PhantomData<L>);
impl<L: Lambda> LambdaRuntime for Typed<L> {}

pub(crate) fn lambda_runtime<L: Lambda>() -> Box<dyn LambdaRuntime> {
    Box::new(Typed::<L>(std::marker::PhantomData))
}
