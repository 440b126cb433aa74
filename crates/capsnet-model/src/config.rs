//! Model configuration: the paper's defaults, every deviation a documented option.

use serde::{Deserialize, Serialize};

use crate::error::ModelConfigError;
use crate::routing::RoutingConfig;
use crate::squash::{DEFAULT_EPS, Squash, SquashKind};

/// Reconstruction decoder configuration (paper Fig. 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Whether the decoder (and its reconstruction loss) exists at all.
    pub enabled: bool,
    /// Hidden layer widths, ReLU after each (paper: 512, 1024). Output is sigmoid, one unit per
    /// input pixel and channel.
    pub hidden: Vec<usize>,
}

impl DecoderConfig {
    /// Layer widths from the masked capsules (`input`) through the hidden layers to the image
    /// (`output`): each consecutive pair is one fully connected layer.
    pub fn widths(&self, input: usize, output: usize) -> Vec<usize> {
        let mut widths = vec![input];
        widths.extend(&self.hidden);
        widths.push(output);
        widths
    }
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hidden: vec![512, 1024],
        }
    }
}

/// CapsNet architecture. Defaults are the paper's MNIST model (8,215,568 parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapsNetConfig {
    /// Input channels (MNIST 1, CIFAR-10 3).
    pub input_channels: usize,
    /// Input height in pixels.
    pub input_height: usize,
    /// Input width in pixels.
    pub input_width: usize,
    /// Conv1 output channels (paper: 256).
    pub conv1_channels: usize,
    /// Conv1 kernel size, stride 1, ReLU (paper: 9).
    pub conv1_kernel: usize,
    /// Number of primary capsule types (paper: 32 on MNIST, 64 on CIFAR-10).
    pub primary_types: usize,
    /// Primary capsule dimension (paper: 8).
    pub primary_dim: usize,
    /// PrimaryCaps convolution kernel (paper: 9).
    pub primary_kernel: usize,
    /// PrimaryCaps convolution stride (paper: 2).
    pub primary_stride: usize,
    /// Number of classes = parent capsules (paper: 10).
    pub classes: usize,
    /// Class capsule dimension (paper: 16).
    pub class_dim: usize,
    /// Learned bias added to each class capsule before squashing, as in the official code.
    ///
    /// Off by default: the paper's parameter counts (6,804,224 / 8,215,568) have no such bias.
    pub digit_bias: bool,
    /// Standard deviation of the normal initialisation of `W_ij` (official code: 0.01).
    pub weight_init_std: f64,
    /// Routing between PrimaryCaps and DigitCaps: `algorithm = "dynamic"` (default) or
    /// `"self-attention"`, and that algorithm's options.
    pub routing: RoutingConfig,
    /// The squashing function of PrimaryCaps, the routing and the lengths: `"sabour"` (Eq. 1,
    /// default) or `"efficient"` (Efficient-CapsNet's).
    pub squash: SquashKind,
    /// ε under the square roots of the squash and the capsule lengths (deviation from the
    /// paper, see [`DEFAULT_EPS`]). Files written before it was a network setting had it as
    /// `routing.squash_eps`; the loader moves it here.
    pub squash_eps: f64,
    /// Reconstruction decoder.
    pub decoder: DecoderConfig,
}

impl Default for CapsNetConfig {
    fn default() -> Self {
        Self::paper_mnist()
    }
}

impl CapsNetConfig {
    /// The paper's MNIST CapsNet: 28×28×1 input, r = 3, with decoder.
    pub fn paper_mnist() -> Self {
        Self {
            input_channels: 1,
            input_height: 28,
            input_width: 28,
            conv1_channels: 256,
            conv1_kernel: 9,
            primary_types: 32,
            primary_dim: 8,
            primary_kernel: 9,
            primary_stride: 2,
            classes: 10,
            class_dim: 16,
            digit_bias: false,
            weight_init_std: 0.01,
            routing: RoutingConfig::default(),
            squash: SquashKind::Sabour,
            squash_eps: DEFAULT_EPS,
            decoder: DecoderConfig::default(),
        }
    }

    /// The network's squashing function.
    pub fn squash(&self) -> Squash {
        Squash {
            kind: self.squash,
            eps: self.squash_eps,
        }
    }

    /// Spatial size `(height, width)` of conv1's output.
    pub fn conv1_grid(&self) -> (usize, usize) {
        let k = self.conv1_kernel;
        (
            (self.input_height + 1).saturating_sub(k),
            (self.input_width + 1).saturating_sub(k),
        )
    }

    /// Spatial size `(height, width)` of the PrimaryCaps grid.
    pub fn primary_grid(&self) -> (usize, usize) {
        let (h, w) = self.conv1_grid();
        let out = |n: usize| {
            if n < self.primary_kernel || self.primary_stride == 0 {
                0
            } else {
                (n - self.primary_kernel) / self.primary_stride + 1
            }
        };
        (out(h), out(w))
    }

    /// Number of primary (child) capsules: types × grid height × grid width (paper: 1,152).
    pub fn primary_capsules(&self) -> usize {
        let (h, w) = self.primary_grid();
        self.primary_types * h * w
    }

    /// Number of input pixels times channels, i.e. the decoder's output width.
    pub fn input_len(&self) -> usize {
        self.input_channels * self.input_height * self.input_width
    }

    /// Checks that every size is positive and the layers fit the input.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        let positive = [
            ("input_channels", self.input_channels),
            ("input_height", self.input_height),
            ("input_width", self.input_width),
            ("conv1_channels", self.conv1_channels),
            ("conv1_kernel", self.conv1_kernel),
            ("primary_types", self.primary_types),
            ("primary_dim", self.primary_dim),
            ("primary_kernel", self.primary_kernel),
            ("primary_stride", self.primary_stride),
            ("class_dim", self.class_dim),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ModelConfigError::NotPositive { key });
            }
        }
        if self.classes < 2 {
            return Err(ModelConfigError::Invalid {
                key: "classes",
                value: self.classes.to_string(),
                reason: "need at least 2 classes".into(),
            });
        }
        self.routing.validate()?;
        validate_squash_eps(self.squash_eps)?;
        if !(self.weight_init_std > 0.0 && self.weight_init_std.is_finite()) {
            return Err(ModelConfigError::Invalid {
                key: "weight_init_std",
                value: self.weight_init_std.to_string(),
                reason: "must be a finite number > 0".into(),
            });
        }
        if self.decoder.hidden.contains(&0) {
            return Err(ModelConfigError::NotPositive {
                key: "decoder.hidden",
            });
        }
        let (h, w) = self.primary_grid();
        if h == 0 || w == 0 {
            return Err(ModelConfigError::InputTooSmall {
                height: self.input_height,
                width: self.input_width,
                needed: self.conv1_kernel + self.primary_kernel - 1,
            });
        }
        Ok(())
    }
}

/// `squash_eps` must be a finite number ≥ 0.
pub(crate) fn validate_squash_eps(eps: f64) -> Result<(), ModelConfigError> {
    if eps >= 0.0 && eps.is_finite() {
        Ok(())
    } else {
        Err(ModelConfigError::Invalid {
            key: "squash_eps",
            value: eps.to_string(),
            reason: "must be a finite number ≥ 0".into(),
        })
    }
}

/// The paper's MNIST baseline CNN (Table 1): three 5×5 SAME convolutions of 256, 256 and 128
/// channels, fully connected 328 → 192, dropout, 10-way softmax (35,445,522 parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineCnnConfig {
    /// Input channels.
    pub input_channels: usize,
    /// Input height.
    pub input_height: usize,
    /// Input width.
    pub input_width: usize,
    /// Convolution widths (stride 1, SAME padding, ReLU).
    pub conv_channels: Vec<usize>,
    /// Convolution kernel size.
    pub kernel: usize,
    /// Per-layer kernel sizes overriding `kernel` (one per convolution; empty: all `kernel`).
    /// The MultiMNIST baseline uses 9 then 5.
    pub kernels: Vec<usize>,
    /// 2×2 max-pooling (stride 2) after every convolution (the MultiMNIST baseline; the MNIST
    /// baseline has none).
    pub pool: bool,
    /// Fully connected hidden widths (ReLU).
    pub hidden: Vec<usize>,
    /// Dropout probability before the final layer.
    pub dropout: f64,
    /// Number of classes.
    pub classes: usize,
    /// A reconstruction decoder like CapsNet's (not in the paper's baseline; off by default):
    /// fully connected layers from the last hidden layer's activations (the flattened features
    /// when there is no hidden layer) to the image, trained with the same weighted SSE
    /// (`loss.recon_weight`) added to the cross-entropy. For telling an auxiliary
    /// reconstruction loss from capsules in comparisons. One-target datasets only.
    pub decoder: DecoderConfig,
}

impl DecoderConfig {
    /// No decoder (the baseline CNN's default); enabling it gives the paper's widths.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

impl Default for BaselineCnnConfig {
    fn default() -> Self {
        Self {
            input_channels: 1,
            input_height: 28,
            input_width: 28,
            conv_channels: vec![256, 256, 128],
            kernel: 5,
            kernels: Vec::new(),
            pool: false,
            hidden: vec![328, 192],
            dropout: 0.5,
            classes: 10,
            decoder: DecoderConfig::disabled(),
        }
    }
}

impl BaselineCnnConfig {
    /// The MultiMNIST baseline of the paper (section 6): 512 9×9 and 256 5×5 SAME
    /// convolutions, each followed by 2×2 max-pooling, a 1,024-unit layer and 10 sigmoid
    /// outputs on 36×36 inputs (24,563,978 parameters).
    pub fn paper_multimnist() -> Self {
        Self {
            input_channels: 1,
            input_height: 36,
            input_width: 36,
            conv_channels: vec![512, 256],
            kernel: 5,
            kernels: vec![9, 5],
            pool: true,
            hidden: vec![1024],
            dropout: 0.0,
            classes: 10,
            decoder: DecoderConfig::disabled(),
        }
    }

    /// Kernel size of convolution `i`.
    pub fn kernel_of(&self, i: usize) -> usize {
        self.kernels.get(i).copied().unwrap_or(self.kernel)
    }

    /// Width of the features the decoder reads: the last hidden layer, or the flattened
    /// convolution features when there is no hidden layer.
    pub fn decoder_input(&self) -> usize {
        match self.hidden.last() {
            Some(&width) => width,
            None => {
                let (h, w) = self.feature_grid();
                self.conv_channels.last().copied().unwrap_or(0) * h * w
            }
        }
    }

    /// `(height, width)` after the convolutions (and pooling).
    pub fn feature_grid(&self) -> (usize, usize) {
        if self.pool {
            let n = self.conv_channels.len() as u32;
            (self.input_height >> n, self.input_width >> n)
        } else {
            (self.input_height, self.input_width)
        }
    }

    /// Checks that every size is positive and the dropout is a probability.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        for (key, value) in [
            ("input_channels", self.input_channels),
            ("input_height", self.input_height),
            ("input_width", self.input_width),
            ("kernel", self.kernel),
        ] {
            if value == 0 {
                return Err(ModelConfigError::NotPositive { key });
            }
        }
        if self.conv_channels.is_empty() || self.conv_channels.contains(&0) {
            return Err(ModelConfigError::NotPositive {
                key: "conv_channels",
            });
        }
        if self.hidden.contains(&0) {
            return Err(ModelConfigError::NotPositive { key: "hidden" });
        }
        if self.decoder.enabled && self.decoder.hidden.contains(&0) {
            return Err(ModelConfigError::NotPositive {
                key: "decoder.hidden",
            });
        }
        if !self.kernels.is_empty() && self.kernels.len() != self.conv_channels.len() {
            return Err(ModelConfigError::Invalid {
                key: "kernels",
                value: format!("{:?}", self.kernels),
                reason: format!(
                    "needs one kernel size per convolution ({} in conv_channels)",
                    self.conv_channels.len()
                ),
            });
        }
        if self.kernels.contains(&0) {
            return Err(ModelConfigError::NotPositive { key: "kernels" });
        }
        let (h, w) = self.feature_grid();
        if h == 0 || w == 0 {
            return Err(ModelConfigError::InputTooSmall {
                height: self.input_height,
                width: self.input_width,
                needed: 1 << self.conv_channels.len(),
            });
        }
        if self.classes < 2 {
            return Err(ModelConfigError::Invalid {
                key: "classes",
                value: self.classes.to_string(),
                reason: "need at least 2 classes".into(),
            });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelConfigError::Invalid {
                key: "dropout",
                value: self.dropout.to_string(),
                reason: "must be in [0, 1)".into(),
            });
        }
        Ok(())
    }
}
