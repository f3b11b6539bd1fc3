//! The interface shared by two programs: the `typed_server` example implements it, the
//! `typed_client` example calls it through the generated `InventoryProxy`, and neither sees
//! the other's code. This crate holds only the trait and the value types that cross the wire.
//!
//! `#[expose]` on the trait writes, next to it:
//!
//! - `InventoryServer<T>`: serves any `T: Inventory` (lend `InventoryServer(my_shop)`);
//! - `InventoryProxy`: the typed client, `InventoryProxy<Blocking>` its blocking twin.

use netref::{expose, Proxy};
use serde::{Deserialize, Serialize};

/// A line of stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What it is.
    pub name: String,
    /// How many are in stock.
    pub count: u32,
}

/// A shop's inventory.
#[expose]
pub trait Inventory {
    /// Adds `count` of `name` and returns the new count.
    #[exposed]
    fn add(&self, name: String, count: u32) -> u32;

    /// Takes `count` of `name` away and returns what is left; fails when there are not enough.
    #[exposed]
    fn take(&self, name: String, count: u32) -> netref::Result<u32>;

    /// Everything in stock, by name.
    #[exposed]
    fn items(&self) -> Vec<Item>;

    /// Calls `on_low(item)` for every item with fewer than `threshold` in stock, one after
    /// the other, and returns how many there were.
    #[exposed]
    async fn low_stock(&self, threshold: u32, on_low: Proxy) -> netref::Result<u32>;

    /// The shop's name.
    #[exposed(property)]
    fn shop(&self) -> String;
}
