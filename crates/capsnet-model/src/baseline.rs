//! The paper's baseline CNN for Table 1.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use crate::config::BaselineCnnConfig;
use crate::error::ModelConfigError;

/// Conv ×3 (5×5, SAME, ReLU) → FC 328 → FC 192 → dropout → logits (MNIST); with `pool`,
/// 2×2 max-pooling after each convolution (the MultiMNIST baseline).
#[derive(Module, Debug)]
pub struct BaselineCnn {
    convs: Vec<Conv2d>,
    hidden: Vec<Linear>,
    dropout: Dropout,
    output: Linear,
    pool: bool,
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
        Ok(BaselineCnn {
            convs,
            hidden,
            dropout,
            output,
            pool: self.pool,
        })
    }
}

impl BaselineCnn {
    /// `[batch, channels, height, width]` → class logits `[batch, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
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
        self.output.forward(self.dropout.forward(x))
    }
}
