//! Restricted views: an object lent with only some of its exposed members, through the same
//! gate, locally and over a connection.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use netref::{expose, ErrorKind, Obj, Object, Proxy, Restricted, Value};

#[derive(Default)]
struct Account {
    balance: AtomicI64,
}

/// A bank account.
#[expose]
impl Account {
    /// The balance.
    #[exposed(property)]
    fn balance(&self) -> i64 {
        self.balance.load(Ordering::SeqCst)
    }

    /// Sets the balance.
    #[exposed(setter)]
    fn set_balance(&self, value: i64) {
        self.balance.store(value, Ordering::SeqCst);
    }

    /// Adds `amount`.
    #[exposed]
    fn deposit(&self, amount: i64) -> i64 {
        self.balance.fetch_add(amount, Ordering::SeqCst) + amount
    }

    /// Takes `amount` out.
    #[exposed]
    fn withdraw(&self, amount: i64) -> i64 {
        self.balance.fetch_sub(amount, Ordering::SeqCst) - amount
    }

    /// This account itself (to reach members through a path).
    #[exposed(property)]
    fn me(&self) -> Value {
        Value::Nil
    }
}

/// Every way of reaching a left-out member is refused as if it was never exposed.
async fn check_view(view: &Proxy, account: &Account) {
    assert_eq!(
        view.call_method("deposit", (5,)).await.unwrap(),
        Value::Int(5)
    );
    assert_eq!(view.attr("balance").get().await.unwrap(), Value::Int(5));
    let no = |r: netref::Result<Value>| {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSuchMember, "{e}");
    };
    no(view.call_method("withdraw", (1,)).await);
    no(view.attr("withdraw").get().await);
    no(view.attr("me").get().await);
    no(view.attr("withdraw").help().await.map(Value::from));
    no(view.attr("withdraw").dir().await.map(|_| Value::Nil));
    no(view.attr("me").attr("deposit").call((1,)).await);
    assert_eq!(view.dir().await.unwrap(), ["balance", "deposit"]);
    let help = view.help().await.unwrap();
    assert!(
        help.contains("deposit") && !help.contains("withdraw"),
        "{help}"
    );
    // The setter belongs to the kept property.
    view.attr("balance").set(9).await.unwrap();
    assert_eq!(account.balance(), 9);
    assert_eq!(
        view.call_method("deposit", netref::Args::new().named("amount", 1))
            .await
            .unwrap(),
        Value::Int(10)
    );
}

#[tokio::test]
async fn a_restricted_view_shows_only_the_members_kept() {
    // Locally.
    let account = Obj::new(Account::default());
    let view = account.restrict(&["deposit", "balance"]).unwrap();
    check_view(&Proxy::local(view.clone()), &account).await;

    // Over a connection: the peer gets the view as its root.
    let account = Obj::new(Account::default());
    let view = account.restrict(&["balance", "deposit"]).unwrap();
    let (client, _server) = netref::pair(None, Some(view.erase())).await.unwrap();
    check_view(&client.root(), &account).await;
}

/// Lends the full account and a view of it.
struct Bank {
    account: Obj<Account>,
}

#[expose]
impl Bank {
    /// The full account.
    #[exposed(property)]
    fn full(&self) -> Obj<Account> {
        self.account.clone()
    }

    /// A deposit-only view of it.
    #[exposed(property)]
    fn slot(&self) -> Obj<Restricted> {
        self.account.restrict(&["deposit"]).unwrap()
    }

    /// True when `p` arrives home as the full account.
    #[exposed]
    fn is_full(&self, p: Obj<Account>) -> bool {
        Obj::ptr_eq(&p, &self.account)
    }

    /// The type of the object `p` arrives home as.
    #[exposed]
    fn kind_of(&self, p: Proxy) -> String {
        let obj = p
            .local_object()
            .expect("our own object comes home as itself");
        match Obj::<Restricted>::downcast(obj.clone()) {
            Some(_) => "restricted".into(),
            None => obj.type_info().name.into(),
        }
    }
}

#[tokio::test]
async fn a_view_is_its_own_object_and_does_not_open_the_original() {
    let account = Obj::new(Account::default());
    let bank = Obj::new(Bank {
        account: account.clone(),
    });
    let (client, _server) = netref::pair(None, Some(bank.erase())).await.unwrap();
    let root = client.root();
    let full = root.attr("full").get().await.unwrap().into_proxy().unwrap();
    let slot = root.attr("slot").get().await.unwrap().into_proxy().unwrap();
    assert_ne!(full.remote_id(), slot.remote_id());
    slot.call_method("deposit", (3,)).await.unwrap();
    assert!(slot
        .call_method("withdraw", (3,))
        .await
        .unwrap_err()
        .is_no_such_member());
    assert_eq!(account.balance(), 3);
    // Sent home, the view arrives as the view, not as the account behind it.
    let v = root.call_method("kind_of", (slot.clone(),)).await.unwrap();
    assert_eq!(v.as_str(), Some("restricted"));
    let v = root.call_method("kind_of", (full.clone(),)).await.unwrap();
    assert_eq!(v.as_str(), Some("Account"));
    assert_eq!(
        root.call_method("is_full", (full,)).await.unwrap(),
        Value::Bool(true)
    );
    let e = root.call_method("is_full", (slot,)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadArguments, "{e}");
}

#[test]
fn unknown_names_are_refused_and_descriptions_are_shared() {
    let account = Obj::new(Account::default());
    let e = account.restrict(&["deposit", "steal"]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSuchMember);
    assert!(e.to_string().contains("steal"), "{e}");
    // An unexposed method cannot be kept either.
    assert!(account.restrict(&["set_balance"]).is_err());
    // One description per type and member set, whatever the order asked.
    let a = account.restrict(&["deposit", "balance"]).unwrap();
    let b = Obj::new(Account::default())
        .restrict(&["balance", "deposit", "balance"])
        .unwrap();
    assert!(std::ptr::eq(a.type_info(), b.type_info()));
    assert_eq!(a.type_info().members.len(), 2);
    let c = account.restrict(&["deposit"]).unwrap();
    assert!(!std::ptr::eq(a.type_info(), c.type_info()));
    // Dropping views never frees the original.
    let weak = Arc::downgrade(account.arc());
    drop((a, b, c));
    assert!(weak.upgrade().is_some());
}
