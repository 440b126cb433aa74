//! The paper's baseline CNN for Table 1.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use crate::capsnet::Decoder;
use crate::config::BaselineCnnConfig;
use crate::error::ModelConfigError;

/// Conv ×3 (5×5, SAME, ReLU) → FC 328 → FC 192 → dropout → logits (MNIST); with `pool`,
/// 2×2 max-pooling after each convolution (the MultiMNIST baseline); with `decoder`, a
/// reconstruction decoder reading the last hidden layer.
#[derive(Module, Debug)]
pub struct BaselineCnn {
    convs: Vec<Conv2d>,
    hidden: Vec<Linear>,
    dropout: Dropout,
    output: Linear,
    pool: bool,
    decoder: Option<Decoder>,
}

/// What a forward pass of the baseline produces.
#[derive(Debug, Clone)]
pub struct BaselineOutput {
    /// Class logits `[batch, classes]`.
    pub logits: Tensor<2>,
    /// Reconstructions `[batch, pixels]` in (0, 1), when the network has a decoder.
    pub reconstruction: Option<Tensor<2>>,
}

impl BaselineCnnConfig {
    /// Validates the configuration and initialises the network on `device`.
    pub fn init(&self, device: &Device) -> Result<BaselineCnn, ModelConfigError> {
        self.validate()?;
        let mut channels = vec![self.input_channels];
        channels.extend(&self.conv_channels);
        let convs = channels
            .windows(2)
            .enumerate()
            .map(|(i, c)| {
                let k = self.kernel_of(i);
                Conv2dConfig::new([c[0], c[1]], [k, k])
                    .with_padding(PaddingConfig2d::Same)
                    .init(device)
            })
            .collect();
        let (h, w) = self.feature_grid();
        let flat = channels[channels.len() - 1] * h * w;
        let mut widths = vec![flat];
        widths.extend(&self.hidden);
        let hidden = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        let output = LinearConfig::new(widths[widths.len() - 1], self.classes).init(device);
        let dropout = DropoutConfig::new(self.dropout).init();
        let pixels = self.input_channels * self.input_height * self.input_width;
        let decoder = self
            .decoder
            .enabled
            .then(|| Decoder::new(&self.decoder, self.decoder_input(), pixels, device));
        Ok(BaselineCnn {
            convs,
            hidden,
            dropout,
            output,
            pool: self.pool,
            decoder,
        })
    }
}

impl BaselineCnn {
    /// `[batch, channels, height, width]` → class logits `[batch, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.features_and_logits(images).1
    }

    /// Logits and, when the network has a decoder, the reconstruction of each image from its
    /// last hidden layer.
    pub fn forward_reconstructing(&self, images: Tensor<4>) -> BaselineOutput {
        let (features, logits) = self.features_and_logits(images);
        BaselineOutput {
            logits,
            reconstruction: self.decoder.as_ref().map(|d| d.forward(features)),
        }
    }

    /// Whether the network has a reconstruction decoder.
    pub fn has_decoder(&self) -> bool {
        self.decoder.is_some()
    }

    /// The last hidden layer's activations (before dropout) and the logits.
    fn features_and_logits(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let mut x = images;
        for conv in &self.convs {
            x = relu(conv.forward(x));
            if self.pool {
                x = max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]));
            }
        }
        let [batch, c, h, w] = x.dims();
        let mut x = x.reshape([batch, c * h * w]);
        for layer in &self.hidden {
            x = relu(layer.forward(x));
        }
        let logits = self.output.forward(self.dropout.forward(x.clone()));
        (x, logits)
    }
}
