//! The server half of the typed example: implements `inventory_api::Inventory` and lends it
//! over TCP. The client half (`typed_client`) knows only the trait.
//!
//! Run `cargo run --example typed_server [ADDR]` (default `127.0.0.1:0`); it prints
//! `listening on ADDR` and serves until its standard input closes (Ctrl-D) or it is killed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use inventory_api::{Inventory, InventoryServer, Item};
use netref::{ErrorKind, Proxy, Server};

/// A shop: the implementation, private to this program.
struct Shop {
    stock: Mutex<BTreeMap<String, u32>>,
}

impl Inventory for Shop {
    fn add(&self, name: String, count: u32) -> u32 {
        let mut stock = self.stock.lock().unwrap_or_else(|e| e.into_inner());
        let n = stock.entry(name).or_default();
        *n = n.saturating_add(count);
        *n
    }

    fn take(&self, name: String, count: u32) -> netref::Result<u32> {
        let mut stock = self.stock.lock().unwrap_or_else(|e| e.into_inner());
        let n = stock.entry(name.clone()).or_default();
        if *n < count {
            return Err(netref::Error::remote(
                ErrorKind::Failed,
                format!("only {n} {name} in stock, {count} asked"),
            ));
        }
        *n -= count;
        Ok(*n)
    }

    fn items(&self) -> Vec<Item> {
        let stock = self.stock.lock().unwrap_or_else(|e| e.into_inner());
        stock
            .iter()
            .map(|(name, count)| Item {
                name: name.clone(),
                count: *count,
            })
            .collect()
    }

    async fn low_stock(&self, threshold: u32, on_low: Proxy) -> netref::Result<u32> {
        let low: Vec<Item> = self
            .items()
            .into_iter()
            .filter(|item| item.count < threshold)
            .collect();
        for item in &low {
            on_low.call((item.clone(),)).await?;
        }
        Ok(low.len() as u32)
    }

    fn shop(&self) -> String {
        "the corner shop".to_string()
    }
}

#[tokio::main]
async fn main() -> netref::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string());
    let shop = Shop {
        stock: Mutex::new(BTreeMap::new()),
    };
    let server = Server::with_root(InventoryServer(shop)).bind(addr).await?;
    println!("listening on {}", server.local_addr());
    // Serve until stdin closes: a parent process (or the terminal's Ctrl-D) ends us.
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    server.shutdown().await;
    Ok(())
}
