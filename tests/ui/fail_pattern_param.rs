use netref::expose;

struct Geometry;

#[expose]
impl Geometry {
    #[exposed]
    fn area(&self, (w, h): (i64, i64)) -> i64 {
        w * h
    }

    #[exposed]
    fn ignore(&self, _: i64) {}

    #[exposed]
    fn by_ref(&self, ref name: String) -> usize {
        name.len()
    }

    // `mut` bindings are plain names.
    #[exposed]
    fn fine(&self, mut n: i64) -> i64 {
        n += 1;
        n
    }
}

fn main() {}
