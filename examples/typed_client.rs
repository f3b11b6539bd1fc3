//! The client half of the typed example: calls an `inventory_api::Inventory` through the
//! generated `InventoryProxy`, without the implementation (which lives in `typed_server`).
//!
//! Run `cargo run --example typed_server` in one terminal and
//! `cargo run --example typed_client ADDR` in another, with the address the server printed.
//! Pass `--blocking` to make the same calls with the blocking API.

use inventory_api::{InventoryProxy, Item};
use netref::typed::Blocking;
use netref::{blocking, callback};

fn main() -> netref::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().expect("usage: typed_client ADDR [--blocking]");
    if args.next().as_deref() == Some("--blocking") {
        // No runtime of ours: the blocking API starts its own.
        return run_blocking(&addr);
    }
    tokio::runtime::Runtime::new()?.block_on(run(&addr))
}

async fn run(addr: &str) -> netref::Result<()> {
    let conn = netref::connect(addr).await?;
    // Checks once that the root is an `Inventory`, then every call is typed.
    let inventory: InventoryProxy = conn.root_as().await?;
    println!("shop: {}", inventory.shop().await?);
    let apples: u32 = inventory.add("apples".into(), 5).await?;
    inventory.add("pears".into(), 1).await?;
    println!("apples: {apples}");
    let left = inventory.take("apples".into(), 3).await?;
    println!("apples after taking 3: {left}");
    match inventory.take("pears".into(), 9).await {
        Ok(n) => println!("took pears, {n} left"),
        Err(e) => println!("refused: {e}"),
    }
    let items: Vec<Item> = inventory.items().await?;
    println!("items: {items:?}");
    let low = inventory
        .low_stock(
            3,
            callback(|item: Item| println!("low: {} ({})", item.name, item.count)),
        )
        .await?;
    println!("low items: {low}");
    Ok(())
}

fn run_blocking(addr: &str) -> netref::Result<()> {
    let conn = blocking::connect(addr)?;
    let inventory: InventoryProxy<Blocking> = conn.root_as()?;
    println!("shop: {}", inventory.shop()?);
    println!("apples: {}", inventory.add("apples".into(), 1)?);
    println!("items: {:?}", inventory.items()?);
    Ok(())
}
