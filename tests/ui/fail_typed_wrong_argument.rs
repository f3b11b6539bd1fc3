// A typed proxy checks argument types at compile time: `add` takes a name and a count.
use inventory_api::InventoryProxy;

async fn restock(inventory: InventoryProxy) -> netref::Result<u32> {
    inventory.add(5, "apples".to_string()).await
}

fn main() {
    let _ = restock;
}
