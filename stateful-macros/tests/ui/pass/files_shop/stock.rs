use stateful_runtime::prelude::*;

/// Items in stock.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Item {
    pub count: u32,
}

#[lambda(key = String, state = Item)]
impl Stock {
    #[public]
    async fn add(ctx: &mut Ctx<Self>, n: u32) -> Result<(), Rejection> {
        ctx.state_mut().count += n;
        Ok(())
    }

    async fn take(ctx: &mut Ctx<Self>, n: u32) -> Result<u32, Rejection> {
        let mut s = ctx.state_mut();
        s.count = s.count.checked_sub(n).ok_or_else(|| Rejection::new("not enough"))?;
        Ok(s.count)
    }
}
