//! Walks function bodies (with `syn::visit_mut`) to find what the graph needs: typed calls
//! `ctx.call::<T>(key).h(args)`, invocations `ctx.invoke::<T>(event)`, state accesses,
//! `transaction!` blocks and `join!`s — inside loops, branches, closures and nested blocks.
//!
//! Inside a handler it also rewrites `transaction! { .. }.on_failure_return(v)` and
//! `.on_failure(|e| ..)` into a call of the runtime's transaction support.

use proc_macro2::Span;
use quote::quote;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprMethodCall, Ident, Macro, Stmt, Token, Type};

use crate::diag::{Diagnostics, did_you_mean};

/// Kind of an AND-block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlockKind {
    /// `transaction! { .. }`.
    Transaction,
    /// `join!(..)`.
    Join,
}

/// A transaction or join block found in a handler.
#[derive(Debug, Clone)]
pub struct BlockSite {
    /// Transaction or join.
    pub kind: BlockKind,
    /// Source line (0 when unknown).
    pub line: u32,
    /// The enclosing block, if any.
    pub parent: Option<usize>,
}

/// `ctx.call::<T>(key).h(args)` or `ctx.invoke::<T>(event)`.
#[derive(Debug, Clone)]
pub struct CallSite {
    /// The callee type as written (`Stock`).
    pub callee: Type,
    /// The handler (`None` for `invoke`).
    pub handler: Option<Ident>,
    /// Number of arguments passed.
    pub args: usize,
    /// Span of the call's arguments (for arity errors).
    pub args_span: Span,
    /// The innermost enclosing block.
    pub block: Option<usize>,
    /// Whether some enclosing block is a transaction.
    pub in_transaction: bool,
    /// A message after commit (`ctx.send`: `Some(false)`; a timer, `ctx.send_after` or
    /// `ctx.send_at`: `Some(true)`), not a call (`None`).
    pub send: Option<bool>,
}

/// What a function body contains.
#[derive(Debug, Default)]
pub struct Findings {
    /// Calls and invocations, in source order.
    pub calls: Vec<CallSite>,
    /// AND-blocks, in source order (parents before children).
    pub blocks: Vec<BlockSite>,
    /// Spans of state accesses (`.state()`, `.state_mut()`, `.set_state()`).
    pub state_accesses: Vec<Span>,
}

/// What the walker knows about the function it walks.
pub enum Scope {
    /// A handler: its context parameter and declared return type.
    Handler {
        /// The context parameter.
        ctx: Ident,
        /// Whether it is `&mut Ctx<Self>` (the handler may write).
        ctx_mut: bool,
        /// The declared return type.
        ret: Box<Type>,
    },
    /// Any other function of the module, with its parameter names.
    Other {
        /// The function's name.
        name: Ident,
        /// Whether it has a context parameter of its own.
        has_ctx: bool,
    },
}

/// The body walker.
pub struct Walker<'d> {
    scope: Scope,
    stack: Vec<usize>,
    /// What was found.
    pub found: Findings,
    d: &'d mut Diagnostics,
}

const FAILURE_METHODS: [&str; 2] = ["on_failure_return", "on_failure"];

/// The context's methods that write the instance.
const WRITES: [&str; 3] = ["state_mut", "set_state", "delete"];

fn macro_name(m: &Macro) -> Option<String> {
    m.path.segments.last().map(|s| s.ident.to_string())
}

fn line_of(span: Span) -> u32 {
    u32::try_from(span.start().line).unwrap_or(0)
}

impl<'d> Walker<'d> {
    /// A walker for one function.
    pub fn new(scope: Scope, d: &'d mut Diagnostics) -> Self {
        Walker {
            scope,
            stack: Vec::new(),
            found: Findings::default(),
            d,
        }
    }

    /// Walks (and rewrites) a function body.
    pub fn walk(mut self, block: &mut Block) -> Findings {
        self.visit_block_mut(block);
        self.found
    }

    fn in_transaction(&self) -> bool {
        self.stack
            .iter()
            .any(|&b| self.found.blocks[b].kind == BlockKind::Transaction)
    }

    fn open(&mut self, kind: BlockKind, span: Span) {
        self.found.blocks.push(BlockSite {
            kind,
            line: line_of(span),
            parent: self.stack.last().copied(),
        });
        self.stack.push(self.found.blocks.len() - 1);
    }

    fn not_in_handler(&mut self, span: Span) {
        if let Scope::Other { name, .. } = &self.scope {
            let msg = format!(
                "`transaction!` can only be used inside a lambda handler; `{name}` is not one \
                 (handlers are `async fn`s taking `ctx: &mut Ctx<Self>` in a `#[lambda] impl`)"
            );
            self.d.at(span, msg);
        }
    }

    /// `transaction! { .. }.on_failure_return(v)` / `.on_failure(|e| ..)`.
    fn transaction(&mut self, mc: &mut ExprMethodCall) -> Option<Expr> {
        let Expr::Macro(m) = &*mc.receiver else {
            return None;
        };
        if macro_name(&m.mac).as_deref() != Some("transaction") {
            return None;
        }
        let span = m.mac.path.span();
        let method = mc.method.to_string();
        if !FAILURE_METHODS.contains(&method.as_str()) {
            self.d.spanned(
                &mc.method,
                format!(
                    "`transaction!` is followed by `.on_failure_return(value)` or \
                     `.on_failure(|e| ..)`, not `.{method}`{}",
                    did_you_mean(&method, FAILURE_METHODS)
                ),
            );
            return Some(syn::parse_quote!(::core::unimplemented!()));
        }
        let (ctx, ret) = match &self.scope {
            Scope::Handler { ctx, ret, .. } => (ctx.clone(), ret.clone()),
            Scope::Other { .. } => {
                self.not_in_handler(span);
                return Some(syn::parse_quote!(::core::unimplemented!()));
            }
        };
        let mut stmts = match m.mac.parse_body_with(Block::parse_within) {
            Ok(s) => s,
            Err(e) => {
                self.d.push(e);
                return Some(syn::parse_quote!(::core::unimplemented!()));
            }
        };
        self.open(BlockKind::Transaction, span);
        for s in &mut stmts {
            self.visit_stmt_mut(s);
        }
        self.stack.pop();
        for a in &mut mc.args {
            self.visit_expr_mut(a);
        }
        let failure = if method == "on_failure_return" {
            if mc.args.len() != 1 {
                self.d.spanned(
                    &mc.method,
                    "`.on_failure_return(value)` takes the value the handler returns on failure",
                );
                return Some(syn::parse_quote!(::core::unimplemented!()));
            }
            let v = &mc.args[0];
            quote!(::core::result::Result::Err(_) => #v,)
        } else {
            match mc.args.first() {
                Some(Expr::Closure(c)) if mc.args.len() == 1 && c.inputs.len() == 1 => {
                    let pat = &c.inputs[0];
                    let body = &c.body;
                    quote!(::core::result::Result::Err(__stateful_err) => {
                        let #pat = __stateful_err;
                        #body
                    })
                }
                _ => {
                    self.d.spanned(
                        &mc.args,
                        "`.on_failure(|e| ..)` takes a closure of the error, returning the \
                         handler's result",
                    );
                    return Some(syn::parse_quote!(::core::unimplemented!()));
                }
            }
        };
        let p = quote!(::stateful_runtime::__private);
        Some(syn::parse_quote_spanned! {span=>
            match #p::transaction(
                #p::txn_ctx(&*#ctx),
                #p::tx_body::<_, <#ret as #p::HandlerResult>::Error, _>(async { #(#stmts)* }),
            )
            .await
            {
                ::core::result::Result::Ok(__stateful_ok) => ::core::result::Result::<
                    _,
                    <#ret as #p::HandlerResult>::Error,
                >::Ok(__stateful_ok),
                #failure
            }
        })
    }

    fn record_call(&mut self, mc: &ExprMethodCall) {
        // ctx.call::<T>(key).h(args), ctx.send::<T>(key).h(args), ctx.send_after::<T>(d, key)..
        let send = |m: &Ident| match m.to_string().as_str() {
            "send" => Some(Some(false)),
            "send_after" | "send_at" => Some(Some(true)),
            "call" => Some(None),
            _ => None,
        };
        if let Expr::MethodCall(inner) = &*mc.receiver
            && let Some(kind) = send(&inner.method)
            && let Some(tf) = &inner.turbofish
            && tf.args.len() == 1
            && let Some(syn::GenericArgument::Type(t)) = tf.args.first()
        {
            self.found.calls.push(CallSite {
                callee: t.clone(),
                handler: Some(mc.method.clone()),
                args: mc.args.len(),
                args_span: mc.paren_token.span.join(),
                block: self.stack.last().copied(),
                in_transaction: self.in_transaction(),
                send: kind,
            });
        }
        // ctx.invoke::<T>(event)
        if mc.method == "invoke"
            && let Some(tf) = &mc.turbofish
            && let Some(syn::GenericArgument::Type(t)) = tf.args.first()
        {
            self.found.calls.push(CallSite {
                callee: t.clone(),
                handler: None,
                args: mc.args.len(),
                args_span: mc.args.span(),
                block: self.stack.last().copied(),
                in_transaction: self.in_transaction(),
                send: None,
            });
        }
        let method = mc.method.to_string();
        if ["send", "send_after", "send_at"].contains(&method.as_str())
            && let Expr::Path(p) = &*mc.receiver
            && p.path.is_ident("ctx")
            && let Scope::Handler { ctx_mut: false, .. } = &self.scope
        {
            self.d.spanned(
                &mc.method,
                format!(
                    "`ctx.{method}()` records a message, an effect of this request like a write, \
                     but this handler takes `&Ctx<Self>`, which only reads: take \
                     `ctx: &mut Ctx<Self>` to send"
                ),
            );
        }
        if ["state", "state_mut", "set_state", "delete", "exists"].contains(&method.as_str())
            && let Expr::Path(p) = &*mc.receiver
            && p.path.is_ident("ctx")
        {
            self.found.state_accesses.push(mc.method.span());
            if WRITES.contains(&method.as_str())
                && let Scope::Handler { ctx_mut: false, .. } = &self.scope
            {
                self.d.spanned(
                    &mc.method,
                    format!(
                        "`ctx.{method}()` writes, but this handler takes `&Ctx<Self>`, which only \
                         reads (and lets readers of the instance run together): take \
                         `ctx: &mut Ctx<Self>` to write"
                    ),
                );
            }
            if let Scope::Other {
                name,
                has_ctx: false,
            } = &self.scope
            {
                let msg = format!(
                    "`{}` is not a handler, so it has no instance state: `ctx.{}()` works only \
                     in an `async fn` taking `ctx: &mut Ctx<Self>` inside a `#[lambda] impl`",
                    name, mc.method
                );
                self.d.spanned(&mc.method, msg);
            }
        }
    }

    /// `join!(a, b, ..)`: records an AND-node of kind join and walks its arguments.
    fn join(&mut self, m: &mut Macro) {
        let span = m.path.span();
        let Ok(mut args) = m.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
        else {
            return;
        };
        self.open(BlockKind::Join, span);
        for a in &mut args {
            self.visit_expr_mut(a);
        }
        self.stack.pop();
        m.tokens = quote!(#args);
    }
}

impl VisitMut for Walker<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::MethodCall(mc) = e {
            if let Some(new) = self.transaction(mc) {
                *e = new;
                return;
            }
            self.record_call(mc);
        }
        visit_mut::visit_expr_mut(self, e);
    }

    fn visit_macro_mut(&mut self, m: &mut Macro) {
        match macro_name(m).as_deref() {
            Some("transaction") => {
                let span = m.path.span();
                if matches!(self.scope, Scope::Handler { .. }) {
                    self.d.at(
                        span,
                        "`transaction! { .. }` needs a failure value: add \
                         `.on_failure_return(value)` or `.on_failure(|e| ..)` after the block",
                    );
                } else {
                    self.not_in_handler(span);
                }
            }
            Some("join") => self.join(m),
            _ => {}
        }
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        visit_mut::visit_stmt_mut(self, s);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {
        // Items nested in a body are not part of the handler.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn handler_scope() -> Scope {
        Scope::Handler {
            ctx: syn::parse_quote!(ctx),
            ctx_mut: true,
            ret: Box::new(syn::parse_quote!(Result<(), ShopError>)),
        }
    }

    fn walk(scope: Scope, mut block: Block) -> (Findings, Block, Vec<String>) {
        let mut d = Diagnostics::default();
        let f = Walker::new(scope, &mut d).walk(&mut block);
        (f, block, d.messages())
    }

    #[test]
    fn finds_calls_in_loops_branches_and_closures() {
        let (f, _, errs) = walk(
            handler_scope(),
            syn::parse_quote!({
                for (item, qty) in &items {
                    if *qty > 0 {
                        ctx.call::<Stock>(item).subtract(*qty).await?;
                    } else {
                        let g = || ctx.call::<Stock>(item).add(1, 2);
                    }
                }
                ctx.invoke::<Payment>(PaymentRequested { user: u }).await?;
                ctx.state_mut().paid = true;
            }),
        );
        assert!(errs.is_empty(), "{errs:?}");
        let calls: Vec<(String, Option<String>, usize)> = f
            .calls
            .iter()
            .map(|c| {
                (
                    c.callee.to_token_stream().to_string(),
                    c.handler.as_ref().map(ToString::to_string),
                    c.args,
                )
            })
            .collect();
        assert_eq!(
            calls,
            [
                ("Stock".into(), Some("subtract".into()), 1),
                ("Stock".into(), Some("add".into()), 2),
                ("Payment".into(), None, 1),
            ]
        );
        assert_eq!(f.state_accesses.len(), 1);
        assert!(f.blocks.is_empty());
    }

    #[test]
    fn rewrites_nested_transactions_and_records_blocks() {
        let (f, block, errs) = walk(
            handler_scope(),
            syn::parse_quote!({
                transaction! {
                    ctx.call::<Stock>(a).subtract(1).await?;
                    transaction! {
                        ctx.call::<Payment>(u).pay(2).await?;
                        Ok(())
                    }.on_failure(|e| Err(e))?;
                    Ok(())
                }
                .on_failure_return(Err(ShopError::CheckoutFailed))
            }),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(f.blocks.len(), 2);
        assert_eq!(f.blocks[1].parent, Some(0));
        assert_eq!(f.calls[0].block, Some(0));
        assert_eq!(f.calls[1].block, Some(1));
        assert!(f.calls.iter().all(|c| c.in_transaction));
        let code = block.to_token_stream().to_string();
        assert!(!code.contains("transaction !"), "{code}");
        assert_eq!(
            code.matches("__private :: transaction").count(),
            2,
            "{code}"
        );
        assert!(
            code.contains("tx_body :: < _ , < Result < () , ShopError >"),
            "{code}"
        );
    }

    #[test]
    fn join_is_an_and_node() {
        let (f, _, errs) = walk(
            handler_scope(),
            syn::parse_quote!({
                let (a, b) = join!(ctx.call::<Stock>(x).find(), ctx.call::<Stock>(y).find());
            }),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(f.blocks.len(), 1);
        assert_eq!(f.blocks[0].kind, BlockKind::Join);
        assert_eq!(f.calls.len(), 2);
        assert!(
            f.calls
                .iter()
                .all(|c| c.block == Some(0) && !c.in_transaction)
        );
    }

    #[test]
    fn transaction_needs_a_failure_value_and_a_handler() {
        let (_, _, errs) = walk(
            handler_scope(),
            syn::parse_quote!({
                transaction! { Ok(()) };
                transaction! { Ok(()) }.on_failur_return(1)
            }),
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("needs a failure value"));
        assert!(
            errs[1].contains("did you mean `on_failure_return`?"),
            "{errs:?}"
        );
        let (_, _, errs) = walk(
            Scope::Other {
                name: syn::parse_quote!(helper),
                has_ctx: false,
            },
            syn::parse_quote!({
                ctx.state();
                transaction! { Ok(()) }.on_failure_return(2)
            }),
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("`helper` is not a handler"));
        assert!(errs[1].contains("only be used inside a lambda handler"));
    }
}
