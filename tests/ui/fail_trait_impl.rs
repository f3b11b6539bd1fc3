use netref::expose;

struct Thing;

trait Named {
    fn name(&self) -> String;
}

#[expose]
impl Named for Thing {
    #[exposed]
    fn name(&self) -> String {
        "thing".into()
    }
}

struct Wrapper<T>(T);

#[expose]
impl<T: Send + Sync + 'static> Wrapper<T> {
    #[exposed]
    fn ping(&self) -> i64 {
        1
    }
}

fn main() {}
