//! The ResNet's BatchNorms on the Flex CPU backend, each with what follows it in the block
//! (`relu(bn(x))`, `relu(bn(x) + identity)`, or `bn(x)` alone) as one op, forward and backward,
//! through this crate's kernels (`kernels.rs`). Flex runs Burn's default BatchNorm as a chain
//! of element-wise ops, each a pass over the activations and an allocation; here it is two
//! reads and a write each way.
//!
//! Reached as `conv/` is (see there): a custom autodiff node for `Autodiff<Flex>` (training)
//! and a plain forward for Flex (inference), by downcasting the tensors. Every other case
//! (other devices, other dtypes, `use_burn_ops`) runs Burn's `BatchNorm::forward` followed by
//! the same addition and ReLU.

pub(crate) mod kernels;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Tensor, TensorData};

use super::flex::{burn_ops, dims, tensor, values};
use kernels::{Epilogue, Shape, Statistics};

type Trained = Autodiff<Flex>;

/// `relu?(bn.forward(x) + residual?)`, on this crate's kernels where they apply.
pub fn batch_norm(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    relu_after: bool,
) -> Tensor<4> {
    if !burn_ops()
        && let Some(y) = on_kernels(bn, x.clone(), residual.clone(), relu_after)
    {
        return y;
    }
    let y = bn.forward(x);
    let y = match residual {
        Some(r) => y + r,
        None => y,
    };
    if relu_after { relu(y) } else { y }
}

/// The op on this crate's kernels, or `None` where they do not apply.
fn on_kernels(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    relu: bool,
) -> Option<Tensor<4>> {
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    let f32s = [x.dtype(), gamma.dtype(), beta.dtype()]
        .into_iter()
        .chain(residual.as_ref().map(Tensor::dtype))
        .all(|d| d == DType::F32);
    if !f32s {
        return None;
    }
    let epilogue = Epilogue {
        residual: residual.is_some(),
        relu,
    };
    // Burn's BatchNorm uses the batch's statistics exactly when it trains on an autodiff device.
    if x.device().is_autodiff() && bn.training.is_enabled() {
        let x = x.try_into_primitive::<Trained>().ok()?;
        let gamma = gamma.try_into_primitive::<Trained>().ok()?;
        let beta = beta.try_into_primitive::<Trained>().ok()?;
        let residual = match residual {
            Some(r) => Some(r.try_into_primitive::<Trained>().ok()?),
            None => None,
        };
        let spec = Spec {
            epsilon: bn.epsilon,
            epilogue,
        };
        let (y, statistics) = tracked(x, gamma, beta, residual, spec);
        update_running(bn, &statistics);
        return Some(Tensor::from_primitive::<Trained>(y));
    }
    let x = x.try_into_primitive::<Flex>().ok()?;
    let residual = match residual {
        Some(r) => Some(r.try_into_primitive::<Flex>().ok()?),
        None => None,
    };
    let plain = |t: Tensor<1>| t.into_data().convert::<f32>().try_into_vec::<f32>().ok();
    let (scale, shift) = kernels::affine(
        &plain(gamma)?,
        &plain(beta)?,
        &plain(bn.running_mean.value())?,
        &plain(bn.running_var.value())?,
        bn.epsilon,
    );
    let y = apply(&x, &scale, &shift, residual.as_ref(), relu);
    Some(Tensor::from_primitive::<Flex>(y))
}

/// The running statistics move towards the batch's by `bn.momentum`, as Burn's BatchNorm does.
fn update_running(bn: &BatchNorm, statistics: &Statistics) {
    let m = bn.momentum as f32;
    let blend = |state: &burn::module::RunningState<Tensor<1>>, batch: &[f32]| {
        let old = state.value_sync();
        let device = old.device();
        let old: Vec<f32> = old
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("f32");
        let new: Vec<f32> = old
            .iter()
            .zip(batch)
            .map(|(&o, &b)| o * (1.0 - m) + b * m)
            .collect();
        let n = new.len();
        state.update(Tensor::from_data(TensorData::new(new, [n]), &device));
    };
    blend(&bn.running_mean, &statistics.mean);
    blend(&bn.running_var, &statistics.variance);
}

/// What the node needs besides the tensors.
#[derive(Debug, Clone, Copy)]
struct Spec {
    epsilon: f64,
    epilogue: Epilogue,
}

fn shape_of(x: &FlexTensor) -> Shape {
    let [images, channels, h, w] = dims::<4>(x);
    Shape {
        images,
        channels,
        pixels: h * w,
    }
}

/// `relu?(x * scale + shift + residual?)` as a Flex tensor shaped like `x`.
fn apply(
    x: &FlexTensor,
    scale: &[f32],
    shift: &[f32],
    residual: Option<&FlexTensor>,
    relu: bool,
) -> FlexTensor {
    let shape = shape_of(x);
    let residual = residual.map(values);
    let mut y = vec![0.0; shape.len()];
    kernels::forward(
        shape,
        &values(x),
        scale,
        shift,
        residual.as_deref(),
        relu,
        &mut y,
    );
    tensor(y, dims::<4>(x))
}

/// The training-mode forward: batch statistics, then the normalised output.
fn train_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    residual: Option<&FlexTensor>,
    spec: Spec,
) -> (FlexTensor, Statistics) {
    let statistics = kernels::statistics(shape_of(x), &values(x));
    let (scale, shift) = kernels::affine(
        &values(gamma),
        &values(beta),
        &statistics.mean,
        &statistics.variance,
        spec.epsilon,
    );
    let y = apply(x, &scale, &shift, residual, spec.epilogue.relu);
    (y, statistics)
}

fn tracked(
    x: FloatTensor<Trained>,
    gamma: FloatTensor<Trained>,
    beta: FloatTensor<Trained>,
    residual: Option<FloatTensor<Trained>>,
    spec: Spec,
) -> (FloatTensor<Trained>, Statistics) {
    match residual {
        Some(r) => {
            let parents = [x.node(), gamma.node(), beta.node(), r.node()];
            record::<4>(parents, &x, &gamma, &beta, Some(&r), spec)
        }
        None => {
            let parents = [x.node(), gamma.node(), beta.node()];
            record::<3>(parents, &x, &gamma, &beta, None, spec)
        }
    }
}

fn record<const N: usize>(
    parents: [NodeGuard; N],
    x: &FloatTensor<Trained>,
    gamma: &FloatTensor<Trained>,
    beta: &FloatTensor<Trained>,
    residual: Option<&FloatTensor<Trained>>,
    spec: Spec,
) -> (FloatTensor<Trained>, Statistics) {
    let forward = || {
        train_forward(
            x.primitive(),
            gamma.primitive(),
            beta.primitive(),
            residual.map(|r| r.primitive()),
            spec,
        )
    };
    match NormBackward
        .prepare::<NoCheckpointing>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_id = prep.checkpoint(x);
            let (y, statistics) = forward();
            let state = State {
                x: x_id,
                // The output is the next convolution's input, kept anyway: the ReLU's mask
                // comes from it at no extra memory.
                y: y.clone(),
                gamma: values(gamma.primitive()).into_owned(),
                statistics: statistics.clone(),
                spec,
            };
            (prep.finish(state, y), statistics)
        }
        OpsKind::UnTracked(prep) => {
            let (y, statistics) = forward();
            (prep.finish(y), statistics)
        }
    }
}

#[derive(Debug, Clone)]
struct State {
    x: NodeId,
    y: FlexTensor,
    gamma: Vec<f32>,
    statistics: Statistics,
    spec: Spec,
}

/// The autodiff node: parents x, gamma, beta and, with a residual, the residual.
#[derive(Debug)]
struct NormBackward;

impl<const N: usize> Backward<Flex, N> for NormBackward {
    type State = State;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(state.x);
        let shape = shape_of(&x);
        let dy = values(&dy);
        let g = match state.spec.epilogue.relu {
            true => std::borrow::Cow::Owned(kernels::through_relu(&dy, &values(&state.y))),
            false => dy,
        };
        let mut dx = vec![0.0; shape.len()];
        let (d_gamma, d_beta) = kernels::backward(
            shape,
            &values(&x),
            &g,
            &state.gamma,
            &state.statistics,
            state.spec.epsilon,
            &mut dx,
        );
        let out = dims::<4>(&x);
        let channels = [shape.channels];
        let parents = &ops.parents;
        if let Some(node) = &parents[0] {
            grads.register::<Flex>(node.id, tensor(dx, out));
        }
        if let Some(node) = &parents[1] {
            grads.register::<Flex>(node.id, tensor(d_gamma, channels));
        }
        if let Some(node) = &parents[2] {
            grads.register::<Flex>(node.id, tensor(d_beta, channels));
        }
        if let Some(Some(node)) = parents.get(3) {
            grads.register::<Flex>(node.id, tensor(g.into_owned(), out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution};

    /// Equal to 1e-4 relative, entry by entry; near zero, relative to the tensor's mean size.
    fn close<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let a = a
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let b = b
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let scale = b.iter().map(|v| v.abs()).sum::<f32>() / b.len().max(1) as f32;
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (y.abs() + scale),
                "{what}: entry {i} is {x}, Burn gives {y}"
            );
        }
    }

    fn burn_reference(
        bn: &BatchNorm,
        x: Tensor<4>,
        residual: Option<Tensor<4>>,
        relu_after: bool,
    ) -> Tensor<4> {
        crate::model::flex::use_burn_ops(true);
        let y = batch_norm(bn, x, residual, relu_after);
        crate::model::flex::use_burn_ops(false);
        y
    }

    /// Forward, the gradients of the input, gamma, beta and the residual, and the running
    /// statistics equal Burn's BatchNorm (followed by the addition and ReLU) on Flex.
    #[test]
    fn training_forward_and_gradients_equal_burn() {
        let device = Device::flex().autodiff();
        let _generator = crate::model::hold_generator();
        // (images, channels, h, w, residual, relu)
        let cases = [
            (2, 3, 5, 7, false, false),
            (4, 8, 3, 3, false, true),
            (3, 5, 4, 6, true, true),
            (33, 2, 1, 1, true, false),
            (2, 16, 9, 9, false, true),
        ];
        for (n, c, h, w, with_residual, relu_after) in cases {
            let case = format!("{n}x{c}x{h}x{w} residual {with_residual} relu {relu_after}");
            let make = || {
                let bn = BatchNormConfig::new(c).init(&device);
                let gamma = Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), &device);
                let beta = Tensor::<1>::random([c], Distribution::Uniform(-0.5, 0.5), &device);
                (bn, gamma, beta)
            };
            let (mut ours_bn, gamma, beta) = make();
            ours_bn.gamma = burn::module::Param::from_tensor(gamma.clone());
            ours_bn.beta = burn::module::Param::from_tensor(beta.clone());
            let mut theirs_bn = make().0;
            theirs_bn.gamma = burn::module::Param::from_tensor(gamma);
            theirs_bn.beta = burn::module::Param::from_tensor(beta);
            let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.3, 2.0), &device)
                .require_grad();
            let residual = with_residual.then(|| {
                Tensor::<4>::random([n, c, h, w], Distribution::Default, &device).require_grad()
            });
            let ours = on_kernels(&ours_bn, x.clone(), residual.clone(), relu_after)
                .expect("the kernels take Autodiff<Flex>");
            let theirs = burn_reference(&theirs_bn, x.clone(), residual.clone(), relu_after);
            let probe = Tensor::<4>::random([n, c, h, w], Distribution::Default, &device);
            let g_ours = (ours.clone() * probe.clone()).sum().backward();
            let g_theirs = (theirs.clone() * probe).sum().backward();
            close(ours, theirs, &format!("{case}: forward"));
            close(
                x.grad(&g_ours).unwrap(),
                x.grad(&g_theirs).unwrap(),
                &format!("{case}: input gradient"),
            );
            for (name, ours_p, theirs_p) in [
                ("gamma", &ours_bn.gamma, &theirs_bn.gamma),
                ("beta", &ours_bn.beta, &theirs_bn.beta),
            ] {
                close(
                    ours_p.val().grad(&g_ours).unwrap(),
                    theirs_p.val().grad(&g_theirs).unwrap(),
                    &format!("{case}: {name} gradient"),
                );
            }
            if let Some(r) = residual {
                close(
                    r.grad(&g_ours).unwrap(),
                    r.grad(&g_theirs).unwrap(),
                    &format!("{case}: residual gradient"),
                );
            }
            close(
                ours_bn.running_mean.value(),
                theirs_bn.running_mean.value(),
                &format!("{case}: running mean"),
            );
            close(
                ours_bn.running_var.value(),
                theirs_bn.running_var.value(),
                &format!("{case}: running variance"),
            );
        }
    }

    /// In inference mode on plain Flex the op uses the running statistics, as Burn does.
    #[test]
    fn inference_on_plain_flex_equals_burn() {
        let device = Device::flex();
        let _generator = crate::model::hold_generator();
        let mut bn = BatchNormConfig::new(6).init(&device);
        bn.running_mean
            .update(Tensor::random([6], Distribution::Default, &device));
        bn.running_var.update(Tensor::random(
            [6],
            Distribution::Uniform(0.5, 2.0),
            &device,
        ));
        bn.gamma =
            burn::module::Param::from_tensor(Tensor::random([6], Distribution::Default, &device));
        let x = Tensor::<4>::random([3, 6, 5, 4], Distribution::Default, &device);
        let r = Tensor::<4>::random([3, 6, 5, 4], Distribution::Default, &device);
        for (residual, relu_after) in [(None, false), (Some(r.clone()), true), (None, true)] {
            let ours = on_kernels(&bn, x.clone(), residual.clone(), relu_after)
                .expect("the kernels take Flex");
            let theirs = burn_reference(&bn, x.clone(), residual, relu_after);
            close(ours, theirs, "inference");
        }
    }
}
