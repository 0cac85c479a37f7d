//! The ResNet's convolutions on the Flex CPU backend, forward and both gradients, through
//! this crate's kernels (`kernels.rs`): Flex computes a convolution's weight gradient as
//! another convolution with the batch as channels, which leaves one core idle and most of the
//! time in unfolding. Everything else, and every other device (libtorch, wgpu, the export's
//! capture), stays on Burn's own `conv2d`.
//!
//! Burn 0.22 routes every tensor through its fixed `Dispatch` enum of backends, so a backend
//! that wraps Flex cannot be plugged under the model; instead the op is written for
//! `Autodiff<Flex>` as a custom autodiff node (Burn's `Backward` trait) and for plain Flex
//! (inference), reached by downcasting the tensor (`Tensor::try_into_primitive`, Burn's
//! `extension` feature).

pub(crate) mod kernels;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Tensor};

use super::flex::{burn_ops, dims, tensor, values};
use std::sync::Arc;

use kernels::{Geometry, Prepared};

type Trained = Autodiff<Flex>;

/// `conv.forward(x)`, on this crate's kernels where they apply.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if burn_ops() {
        return conv.forward(x);
    }
    on_kernels(conv, x.clone()).unwrap_or_else(|| conv.forward(x))
}

/// The convolution on this crate's kernels, or `None` where they do not apply: groups other
/// than 1, a bias, `Same` padding, another dtype (a quantised weight), or a device other than
/// Flex.
fn on_kernels(conv: &Conv2d, x: Tensor<4>) -> Option<Tensor<4>> {
    let w = conv.weight.val();
    // A quantised weight (an INT8 export) stays on Burn's conv2d, which dequantises it.
    if conv.groups != 1 || conv.bias.is_some() || x.dtype() != DType::F32 || w.dtype() != DType::F32
    {
        return None;
    }
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => return None,
    };
    let spec = Spec {
        padding,
        stride: conv.stride,
        dilation: conv.dilation,
    };
    if let (Ok(x), Ok(w)) = (
        x.clone().try_into_primitive::<Trained>(),
        w.clone().try_into_primitive::<Trained>(),
    ) {
        return Some(Tensor::from_primitive::<Trained>(tracked(x, w, spec)));
    }
    let (Ok(x), Ok(w)) = (
        x.try_into_primitive::<Flex>(),
        w.try_into_primitive::<Flex>(),
    ) else {
        return None;
    };
    Some(Tensor::from_primitive::<Flex>(spec.inference(&x, &w)))
}

/// What the kernels need besides the tensors.
#[derive(Debug, Clone, Copy)]
struct Spec {
    padding: [(usize, usize); 2],
    stride: [usize; 2],
    dilation: [usize; 2],
}

impl Spec {
    fn geometry(&self, x: &FlexTensor, w: &FlexTensor) -> Geometry {
        Geometry::new(dims(x), dims(w), self.stride, self.padding, self.dilation)
    }

    /// `kernel` on the tensors' values into a new output tensor, with what it returns.
    fn run<T>(
        &self,
        x: &FlexTensor,
        w: &FlexTensor,
        kernel: impl FnOnce(&Geometry, &[f32], &[f32], &mut [f32]) -> T,
    ) -> (FlexTensor, T) {
        let g = self.geometry(x, w);
        let mut y = vec![0.0; g.output_len()];
        let kept = kernel(&g, &values(x), &values(w), &mut y);
        (tensor(y, g.output_shape()), kept)
    }

    fn forward(&self, x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
        self.run(x, w, kernels::forward).0
    }

    /// The forward pass of inference (plain Flex: predict, score, serve, validation), always
    /// unfolded. Whether Winograd pays depends on the batch, and the two paths round
    /// differently, so taking it would make a sample's probabilities depend on the batch it
    /// came in: the server's dynamic batches must answer what `predict` answers, bit for bit.
    fn inference(&self, x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
        self.run(x, w, kernels::forward_unfolded).0
    }

    /// `forward`, keeping what the input gradient reuses.
    fn forward_keeping(&self, x: &FlexTensor, w: &FlexTensor) -> (FlexTensor, Arc<Prepared>) {
        let (y, kept) = self.run(x, w, kernels::forward_keeping);
        (y, Arc::new(kept))
    }
}

fn tracked(x: FloatTensor<Trained>, w: FloatTensor<Trained>, spec: Spec) -> FloatTensor<Trained> {
    let prepared = ConvBackward
        .prepare::<NoCheckpointing>([x.node(), w.node()])
        .compute_bound()
        .stateful();
    match prepared {
        OpsKind::Tracked(mut prep) => {
            let x_id = prep.checkpoint(&x);
            let w_id = prep.checkpoint(&w);
            let (y, kept) = spec.forward_keeping(x.primitive(), w.primitive());
            prep.finish((x_id, w_id, spec, kept), y)
        }
        OpsKind::UnTracked(prep) => {
            let y = spec.forward(x.primitive(), w.primitive());
            prep.finish(y)
        }
    }
}

/// The autodiff node of a convolution: its state is the input and weight, kept by the
/// checkpointer, the options, and what the forward pass prepared for the input gradient.
#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 2> for ConvBackward {
    type State = (NodeId, NodeId, Spec, Arc<Prepared>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [x_node, w_node] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_id, w_id, spec, kept) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_id);
        let w: FlexTensor = checkpointer.retrieve_node_output(w_id);
        let g = spec.geometry(&x, &w);
        let dy = values(&dy);
        if let Some(node) = x_node {
            let mut dx = vec![0.0; x.shape().num_elements()];
            kernels::backward_input_with(&g, &values(&w), &kept, &dy, &mut dx);
            grads.register::<Flex>(node.id, tensor(dx, dims::<4>(&x)));
        }
        if let Some(node) = w_node {
            let mut dw = vec![0.0; w.shape().num_elements()];
            kernels::backward_weight(&g, &values(&x), &dy, &mut dw);
            grads.register::<Flex>(node.id, tensor(dw, dims::<4>(&w)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    /// Equal to 1e-4 relative, entry by entry; near zero, relative to the tensor's mean size
    /// (sums of many terms of both signs land there with rounding of the terms' size).
    fn close(a: Tensor<4>, b: Tensor<4>, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let a = a.into_data().try_to_vec::<f32>().unwrap();
        let b = b.into_data().try_to_vec::<f32>().unwrap();
        let scale = b.iter().map(|v| v.abs()).sum::<f32>() / b.len().max(1) as f32;
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (y.abs() + scale),
                "{what}: entry {i} is {x}, Flex gives {y}"
            );
        }
    }

    /// Forward and both gradients equal Burn's own conv2d on Flex, on odd shapes, strides,
    /// asymmetric padding and dilation.
    #[test]
    fn forward_and_gradients_equal_flex() {
        let device = Device::flex().autodiff();
        let _generator = crate::model::hold_generator();
        // (batch, in, out, size h x w, kernel, stride, padding (t, l, b, r), dilation)
        let cases = [
            (2, 3, 4, [9, 7], [3, 3], [1, 1], (1, 1, 1, 1), [1, 1]),
            (3, 2, 5, [11, 10], [7, 7], [2, 2], (3, 3, 3, 3), [1, 1]),
            (2, 4, 3, [8, 8], [1, 1], [2, 2], (0, 0, 0, 0), [1, 1]),
            (2, 2, 2, [10, 9], [3, 2], [2, 3], (2, 1, 0, 2), [2, 1]),
            (33, 3, 6, [3, 3], [3, 3], [2, 2], (1, 1, 1, 1), [1, 1]),
            // One image with 2x2 outputs: a short weight-gradient product.
            (1, 16, 8, [2, 2], [3, 3], [1, 1], (1, 1, 1, 1), [1, 1]),
        ];
        for (batch, c_in, c_out, [h, w], kernel, stride, (t, l, b, r), dilation) in cases {
            let conv = Conv2dConfig::new([c_in, c_out], kernel)
                .with_stride(stride)
                .with_dilation(dilation)
                .with_padding(PaddingConfig2d::Explicit(t, l, b, r))
                .with_bias(false)
                .init(&device);
            let x = Tensor::<4>::random([batch, c_in, h, w], Distribution::Default, &device)
                .require_grad();
            let ours = on_kernels(&conv, x.clone()).expect("the kernels take Autodiff<Flex>");
            let theirs = conv.forward(x.clone());
            let probe = Tensor::<4>::random(ours.dims(), Distribution::Default, &device);
            let g_ours = (ours.clone() * probe.clone()).sum().backward();
            let g_theirs = (theirs.clone() * probe).sum().backward();
            let case = format!(
                "{kernel:?} stride {stride:?} pad {:?} dilation {dilation:?}",
                (t, l, b, r)
            );
            close(ours, theirs, &format!("{case}: forward"));
            close(
                x.grad(&g_ours).unwrap(),
                x.grad(&g_theirs).unwrap(),
                &format!("{case}: input gradient"),
            );
            let weight = conv.weight.val();
            close(
                weight.grad(&g_ours).unwrap(),
                weight.grad(&g_theirs).unwrap(),
                &format!("{case}: weight gradient"),
            );
        }
    }

    #[test]
    fn inference_on_plain_flex_equals_flex() {
        let device = Device::flex();
        let _generator = crate::model::hold_generator();
        let conv = Conv2dConfig::new([3, 8], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&device);
        let x = Tensor::<4>::random([4, 3, 13, 12], Distribution::Default, &device);
        let ours = on_kernels(&conv, x.clone()).expect("the kernels take Flex");
        close(ours, conv.forward(x), "forward");
    }

    /// Inference gives a sample the same bits whatever batch it comes in, on a shape whose
    /// training pass takes Winograd at the larger batch only: the server's dynamic batches
    /// answer what `predict` answers.
    #[test]
    fn inference_gives_a_sample_the_same_bits_in_any_batch() {
        let device = Device::flex();
        let _generator = crate::model::hold_generator();
        let conv = Conv2dConfig::new([8, 8], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&device);
        let geometry = |n| Geometry::new([n, 8, 4, 4], [8, 8, 3, 3], [1, 1], [(1, 1); 2], [1, 1]);
        assert!(kernels::uses_winograd(&geometry(40)) && !kernels::uses_winograd(&geometry(1)));
        let batch = Tensor::<4>::random([40, 8, 4, 4], Distribution::Default, &device);
        let bits = |x: Tensor<4>| -> Vec<u32> {
            let y = on_kernels(&conv, x).expect("the kernels take Flex");
            let values = y.into_data().try_to_vec::<f32>().unwrap();
            values.into_iter().map(f32::to_bits).collect()
        };
        let alone = bits(batch.clone().narrow(0, 5, 1));
        let among = bits(batch);
        assert_eq!(alone, among[5 * alone.len()..6 * alone.len()]);
    }

    /// Twenty Adam steps of a small ResNet give Flex's loss trajectory, to rounding.
    #[test]
    fn training_follows_flex_s_loss_trajectory() {
        use crate::model::{ResNetConfig, init_seeded};
        use burn::nn::loss::CrossEntropyLossConfig;
        use burn::optim::{AdamConfig, GradientsParams};
        use burn::tensor::{Int, TensorData};
        use rand::{Rng, SeedableRng};

        let device = Device::flex().autodiff();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (batch, size) = (8, 20);
        let pixels: Vec<f32> = (0..batch * 3 * size * size)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [batch, 3, size, size]), &device);
        let labels: Vec<i64> = (0..batch as i64).map(|i| i % 3).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
        let trajectory = |burn_conv: bool| -> Vec<f32> {
            crate::model::flex::use_burn_ops(burn_conv);
            let mut net = init_seeded(&ResNetConfig::new(3, 3).with_width(8), &device, 1);
            let mut optimizer = AdamConfig::new().init();
            let loss_fn = CrossEntropyLossConfig::new().init(&device);
            let mut losses = Vec::new();
            for _ in 0..20 {
                let loss = loss_fn.forward(net.forward(x.clone()), y.clone());
                losses.push(loss.clone().into_scalar::<f32>());
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optimizer.step(1e-3, net, grads);
            }
            crate::model::flex::use_burn_ops(false);
            losses
        };
        let (ours, flex) = (trajectory(false), trajectory(true));
        for (step, (a, b)) in ours.iter().zip(&flex).enumerate() {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs(),
                "step {step}: loss {a}, Flex gives {b}\nours {ours:?}\nflex {flex:?}"
            );
        }
        assert!(ours[19] < 0.5 * ours[0], "the loss did not fall: {ours:?}");
    }
}
