use netref::expose;

struct Store;

#[expose]
impl Store {
    #[exposed]
    fn put<T: Clone>(&self, _item: T) {}

    #[exposed]
    fn show(&self, _item: impl std::fmt::Display) {}

    #[exposed]
    fn sized<const N: usize>(&self) -> usize {
        N
    }

    #[exposed]
    unsafe fn raw(&self) -> i64 {
        0
    }

    // Lifetime parameters are fine.
    #[exposed]
    fn name<'a>(&'a self) -> &'a str {
        "store"
    }
}

fn main() {}
