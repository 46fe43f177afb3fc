//! The fixture app of the system tests: a ledger of accounts, and transfers between them.
//!
//! Small, but it has every shape the framework-level tests need: an entity lambda with keyed
//! state ([`fixture::Account`]) whose handlers reject without writing, a read handler, routes
//! with `{key}` and typed parameters and one without `{key}` (a fresh id), a handler without a
//! route (reached through `/invoke` and in-process), calls inside `transaction! { .. }`
//! within one lambda ([`Account::transfer`](fixture::Account)) and across two
//! ([`fixture::Transfer`]), a handler that panics halfway through a transaction, and deposits
//! that tell the account's [`fixture::Mailbox`] by a message after commit (or a timer).

/// Accounts and transfers.
#[stateful_runtime::app]
pub mod fixture {
    use stateful_runtime::prelude::*;

    /// Why a ledger operation was rejected.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
    pub enum LedgerError {
        /// The account was never opened.
        #[error("account `{0}` does not exist")]
        NoSuchAccount(String),
        /// A withdrawal of more than the balance.
        #[error("account `{account}` has not enough money: {balance} left, {wanted} wanted")]
        InsufficientFunds {
            /// The account.
            account: String,
            /// Its balance.
            balance: i64,
            /// The amount asked for.
            wanted: i64,
        },
        /// A transfer's transaction failed and was rolled back.
        #[error("transfer `{0}` failed; nothing was moved")]
        TransferFailed(String),
        /// The transfer ran already.
        #[error("transfer `{0}` is done already")]
        AlreadyDone(String),
        /// A call failed in the runtime.
        #[error(transparent)]
        Call(#[from] CallError),
    }

    /// The state of one account.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct AccountState {
        exists: bool,
        balance: i64,
    }

    /// What [`Account`]'s `balance` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct AccountView {
        /// The account.
        pub account: String,
        /// Its balance.
        pub balance: i64,
    }

    /// What [`Account`]'s `create` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Opened {
        /// The new account's id.
        pub account: String,
    }

    #[lambda(key = String, state = AccountState)]
    impl Account {
        /// Opens an account with a fresh id (the route has no `{key}`).
        #[route(post, "/accounts/create/{balance}", key = new)]
        async fn create(ctx: &mut Ctx<Self>, balance: i64) -> Result<Opened, LedgerError> {
            ctx.set_state(AccountState {
                exists: true,
                balance,
            });
            Ok(Opened {
                account: ctx.key().clone(),
            })
        }

        /// Opens account `key` (no route, but public: `/invoke`, the batch route and
        /// in-process callers).
        #[public]
        async fn open(ctx: &mut Ctx<Self>, balance: i64) -> Result<(), LedgerError> {
            ctx.set_state(AccountState {
                exists: true,
                balance,
            });
            Ok(())
        }

        #[route(post, "/accounts/{key}/deposit/{amount}")]
        async fn deposit(ctx: &mut Ctx<Self>, amount: i64) -> Result<i64, LedgerError> {
            // Check before `state_mut`: a rejection must not write the instance.
            if !ctx.state().exists {
                return Err(LedgerError::NoSuchAccount(ctx.key().clone()));
            }
            let mut s = ctx.state_mut();
            s.balance += amount;
            Ok(s.balance)
        }

        #[route(post, "/accounts/{key}/withdraw/{amount}")]
        async fn withdraw(ctx: &mut Ctx<Self>, amount: i64) -> Result<i64, LedgerError> {
            let account = ctx.key().clone();
            // Check before `state_mut` (and release the read first): a rejection must not
            // write the instance.
            let (exists, balance) = {
                let s = ctx.state();
                (s.exists, s.balance)
            };
            if !exists {
                return Err(LedgerError::NoSuchAccount(account));
            }
            if balance < amount {
                return Err(LedgerError::InsufficientFunds {
                    account,
                    balance,
                    wanted: amount,
                });
            }
            let mut s = ctx.state_mut();
            s.balance -= amount;
            Ok(s.balance)
        }

        /// The read handler.
        #[route(get, "/accounts/{key}")]
        async fn balance(ctx: &Ctx<Self>) -> Result<AccountView, LedgerError> {
            let s = ctx.state();
            if !s.exists {
                return Err(LedgerError::NoSuchAccount(ctx.key().clone()));
            }
            Ok(AccountView {
                account: ctx.key().clone(),
                balance: s.balance,
            })
        }

        /// Both legs or neither, between two accounts of this lambda (the first leg is a call
        /// to this very instance).
        #[route(post, "/accounts/{key}/transfer/{to}/{amount}")]
        async fn transfer(ctx: &mut Ctx<Self>, to: String, amount: i64) -> Result<(), LedgerError> {
            let me = ctx.key().clone();
            let name = format!("{me}->{to}");
            transaction! {
                ctx.call::<Account>(&me).withdraw(amount).await?;
                ctx.call::<Account>(&to).deposit(amount).await?;
                Ok(())
            }
            .on_failure_return(Err(LedgerError::TransferFailed(name.clone())))
        }

        /// Internal (no route, not public): only other handlers call it, so `/invoke` does
        /// not know it. Sets a balance outright.
        async fn set_balance(ctx: &mut Ctx<Self>, balance: i64) -> Result<(), LedgerError> {
            ctx.state_mut().balance = balance;
            Ok(())
        }

        /// Written the careless way, "subtract, then check": the rejection takes the
        /// subtraction back all the same.
        #[route(post, "/accounts/{key}/careless_withdraw/{amount}")]
        async fn careless_withdraw(ctx: &mut Ctx<Self>, amount: i64) -> Result<i64, LedgerError> {
            let account = ctx.key().clone();
            ctx.state_mut().balance -= amount;
            let balance = ctx.state().balance;
            if balance < 0 {
                return Err(LedgerError::InsufficientFunds {
                    account,
                    balance: balance + amount,
                    wanted: amount,
                });
            }
            Ok(balance)
        }

        /// A bug after a transaction: the block pays `amount` to `to`, then the handler
        /// panics; the payment must not stay.
        #[route(post, "/accounts/{key}/pay_then_panic/{to}/{amount}")]
        async fn pay_then_panic(
            ctx: &mut Ctx<Self>,
            to: String,
            amount: i64,
        ) -> Result<(), LedgerError> {
            let me = ctx.key().clone();
            let paid: Result<(), LedgerError> = transaction! {
                ctx.call::<Account>(&me).withdraw(amount).await?;
                ctx.call::<Account>(&to).deposit(amount).await?;
                Ok(())
            }
            .on_failure_return(Err(LedgerError::TransferFailed(me.clone())));
            paid?;
            panic!("pay_then_panic: a bug after paying `{to}`");
        }

        /// Deposits `amount` and tells this account's mailbox by a message after commit: once
        /// everything is delivered, every mailbox holds its account's notified deposits.
        #[route(post, "/accounts/{key}/deposit_notify/{amount}")]
        async fn deposit_notify(ctx: &mut Ctx<Self>, amount: i64) -> Result<i64, LedgerError> {
            let me = ctx.key().clone();
            if !ctx.state().exists {
                return Err(LedgerError::NoSuchAccount(me));
            }
            ctx.state_mut().balance += amount;
            ctx.send::<Mailbox>(&me).receive(amount);
            Ok(ctx.state().balance)
        }

        /// [`deposit_notify`](Self::deposit_notify) by a timer, `ms` milliseconds later.
        #[route(post, "/accounts/{key}/deposit_notify_later/{amount}/{ms}")]
        async fn deposit_notify_later(
            ctx: &mut Ctx<Self>,
            amount: i64,
            ms: u64,
        ) -> Result<i64, LedgerError> {
            let me = ctx.key().clone();
            if !ctx.state().exists {
                return Err(LedgerError::NoSuchAccount(me));
            }
            ctx.state_mut().balance += amount;
            ctx.send_after::<Mailbox>(std::time::Duration::from_millis(ms), &me)
                .receive(amount);
            Ok(ctx.state().balance)
        }

        /// A bug: inside a transaction it deposits 1 into `to` and adds 1 here, then panics
        /// (when `to` is not empty, which it never is on this route).
        #[route(post, "/accounts/{key}/explode/{to}")]
        async fn explode(ctx: &mut Ctx<Self>, to: String) -> Result<(), LedgerError> {
            let name = ctx.key().clone();
            transaction! {
                ctx.call::<Account>(&to).deposit(1).await?;
                ctx.state_mut().balance += 1;
                if !to.is_empty() {
                    panic!("explode: a deliberate panic after depositing into `{to}`");
                }
                Ok(())
            }
            .on_failure_return(Err(LedgerError::TransferFailed(name.clone())))
        }
    }

    /// The state of one transfer: set when it ran.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TransferState {
        /// Whether the transfer took place.
        pub done: bool,
        /// The account debited.
        pub from: String,
        /// The account credited.
        pub to: String,
        /// The amount moved.
        pub amount: i64,
    }

    #[lambda(key = String, state = TransferState)]
    impl Transfer {
        /// Moves `amount` from one account to another, atomically and at most once per
        /// transfer id (the key): the paper's Listing 1 shape across two lambdas.
        #[route(post, "/transfers/{key}/{from}/{to}/{amount}")]
        async fn run(
            ctx: &mut Ctx<Self>,
            from: String,
            to: String,
            amount: i64,
        ) -> Result<(), LedgerError> {
            let id = ctx.key().clone();
            if ctx.state().done {
                return Err(LedgerError::AlreadyDone(id));
            }
            transaction! {
                ctx.call::<Account>(&from).withdraw(amount).await?;
                ctx.call::<Account>(&to).deposit(amount).await?;
                ctx.set_state(TransferState {
                    done: true,
                    from: from.clone(),
                    to: to.clone(),
                    amount,
                });
                Ok(())
            }
            .on_failure_return(Err(LedgerError::TransferFailed(id.clone())))
        }

        /// The transfer as it stands (`done: false` for one that never ran or was rolled back).
        #[route(get, "/transfers/{key}")]
        async fn find(ctx: &Ctx<Self>) -> Result<TransferState, LedgerError> {
            Ok(ctx.state().clone())
        }
    }

    /// What an account's deposits told it, by messages after commit.
    #[lambda(key = String, state = i64)]
    impl Mailbox {
        /// Internal: only messages reach it.
        async fn receive(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), LedgerError> {
            *ctx.state_mut() += amount;
            Ok(())
        }

        /// The sum of the deposits received.
        #[route(get, "/mailbox/{key}")]
        async fn total(ctx: &Ctx<Self>) -> Result<i64, LedgerError> {
            Ok(*ctx.state())
        }
    }
}
