// The typed call returns the member's declared type: `items` is a `Vec<Item>`, not a number.
use inventory_api::InventoryProxy;

async fn count(inventory: InventoryProxy) -> netref::Result<u32> {
    let n: u32 = inventory.items().await?;
    Ok(n)
}

fn main() {
    let _ = count;
}
