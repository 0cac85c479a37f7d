//! What this crate's CPU kernels (`conv/`, `norm/`) share: the switch back to Burn's own ops,
//! and the way between Flex tensors and plain `f32` buffers.

use std::borrow::Cow;
use std::cell::Cell;

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};

thread_local! {
    /// Set by `use_burn_ops`. Per thread: the route is chosen where the model's forward pass
    /// runs (the backward pass follows the nodes it recorded), so concurrent callers such as
    /// parallel tests do not switch each other's path.
    static BURN_OPS: Cell<bool> = const { Cell::new(false) };
}

/// Routes this thread's convolutions and BatchNorms through Burn's own ops (true) or this
/// crate's kernels (false, the default): `bench model --burn-ops` times the old path in the
/// same run.
pub fn use_burn_ops(on: bool) {
    BURN_OPS.with(|c| c.set(on));
}

pub(crate) fn burn_ops() -> bool {
    BURN_OPS.with(Cell::get)
}

pub(crate) fn dims<const D: usize>(t: &FlexTensor) -> [usize; D] {
    let shape = t.shape();
    std::array::from_fn(|i| shape[i])
}

/// The tensor's values in row-major order (a copy only when it is a strided view).
pub(crate) fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(t.dtype(), DType::F32, "the CPU kernels take f32");
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().into_data().try_into_vec::<f32>().unwrap()),
    }
}

/// A Flex tensor over `values` (row-major, `shape`).
pub(crate) fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `f` on a fresh rayon pool of `threads` threads: the kernels' determinism tests compare one
/// thread with two.
#[cfg(test)]
pub(crate) fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

/// Every parameter and buffer of a model, in order. (Records cannot be compared as bytes:
/// they carry parameter ids, which are new for every model.)
#[cfg(test)]
pub(crate) fn all_weights<M: burn::module::Module>(model: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(
            &mut self,
            p: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            let data = p.val().into_data().convert::<f32>();
            self.0.extend(data.try_into_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}
