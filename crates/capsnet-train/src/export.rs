//! Weights that travel: a trained network as a safetensors file with the tensor names and
//! layouts of the PyTorch reference (`scripts/reference/capsnet_torch.py`), and back.
//!
//! | capsnet (burn) path          | file name (PyTorch `state_dict`) | layout change |
//! |------------------------------|----------------------------------|---------------|
//! | `conv1.{weight,bias}`        | `conv1.*`                        | none (`[out, in, kh, kw]` in both) |
//! | `primary.conv.*` (CapsNet)   | `primary.*`                      | none |
//! | `stem.<i>.conv.*`            | `convs.<i>.*`                    | none |
//! | `stem.<i>.norm.{gamma,beta,running_mean,running_var}` | `norms.<i>.{weight,bias,running_mean,running_var}` | renamed |
//! | `depthwise.*` (Efficient)    | `primary.*`                      | none (`[128, 1, 9, 9]`) |
//! | `digit.weight` / `capsules.weight` | `weight`                   | none (`[children, child_dim, classes·class_dim]`) |
//! | `digit.priors` / `capsules.priors` | `priors`                   | none |
//! | `digit.bias`                 | `bias`                           | none |
//! | `decoder.layers.<i>.weight`  | `decoder.<i>.weight`             | transposed (burn `[in, out]`, PyTorch `[out, in]`) |
//! | `decoder.layers.<i>.bias`    | `decoder.<i>.bias`               | none |
//!
//! The baseline CNN is exported with the same rules (its own module names). The file's
//! metadata holds `capsnet.arch` and the network section as JSON (`capsnet.network`), which
//! [`import`] checks against the network it fills: a file from another architecture or
//! shape is refused with the names or shapes that differ, before any weight is replaced.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Gradients, Tensor};
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::config::{Arch, ExperimentConfig};
use crate::error::TrainError;
use crate::net::Net;

/// Metadata key: the architecture (`capsnet`, `efficient-capsnet`, `baseline-cnn`).
pub const META_ARCH: &str = "capsnet.arch";
/// Metadata key: the network's section of the experiment, as JSON.
pub const META_NETWORK: &str = "capsnet.network";
/// Metadata key: what the file holds (`weights` or `gradients`).
pub const META_CONTENT: &str = "capsnet.content";

/// burn path → PyTorch name rewrites, applied in order (regular expressions).
const TO_TORCH: [(&str, &str); 7] = [
    (r"^primary\.conv\.", "primary."),
    (r"^depthwise\.", "primary."),
    (r"^stem\.(\d+)\.conv\.", "convs.$1."),
    (r"^stem\.(\d+)\.norm\.", "norms.$1."),
    (r"^(digit|capsules)\.", ""),
    (r"^decoder\.layers\.", "decoder."),
    (r"^layers\.", "layers."),
];

/// PyTorch name → burn path, for the architecture being filled.
fn from_torch(arch: Arch) -> Vec<(&'static str, &'static str)> {
    let mut rules = vec![
        (r"^convs\.(\d+)\.", "stem.$1.conv."),
        (r"^norms\.(\d+)\.", "stem.$1.norm."),
        (r"^decoder\.(\d+)\.", "decoder.layers.$1."),
    ];
    match arch {
        Arch::Capsnet => rules.extend([
            (r"^primary\.", "primary.conv."),
            (r"^(weight|bias|priors)$", "digit.$1"),
        ]),
        Arch::EfficientCapsnet => rules.extend([
            (r"^primary\.", "depthwise."),
            (r"^(weight|bias|priors)$", "capsules.$1"),
        ]),
        Arch::BaselineCnn => {}
    }
    rules
}

fn network_json(config: &ExperimentConfig) -> String {
    let section = match config.arch {
        Arch::Capsnet => serde_json::to_value(&config.model),
        Arch::EfficientCapsnet => serde_json::to_value(&config.efficient),
        Arch::BaselineCnn => serde_json::to_value(&config.baseline),
    };
    section.expect("configs serialise").to_string()
}

fn store_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn save<M: Module>(
    module: &M,
    config: &ExperimentConfig,
    content: &str,
    path: &Path,
) -> Result<(), TrainError> {
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata(META_ARCH, config.arch.name())
        .metadata(META_NETWORK, network_json(config))
        .metadata(META_CONTENT, content)
        .overwrite(true);
    for (from, to) in TO_TORCH {
        store = store.with_key_remapping(from, to);
    }
    module
        .save_into(&mut store)
        .map_err(|e| store_error(path, e))
}

fn save_net(
    net: &Net,
    config: &ExperimentConfig,
    content: &str,
    path: &Path,
) -> Result<(), TrainError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    }
    // Written beside, then renamed: an interrupted export leaves no half file.
    let tmp = path.with_extension("safetensors.tmp");
    match net {
        Net::Capsnet(m) => save(m, config, content, &tmp),
        Net::EfficientCapsnet(m) => save(m, config, content, &tmp),
        Net::BaselineCnn(m) => save(m, config, content, &tmp),
    }?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Writes `net`'s weights (trained with `config`) to `path` (safetensors, PyTorch names).
pub fn export(net: &Net, config: &ExperimentConfig, path: &Path) -> Result<(), TrainError> {
    save_net(net, config, "weights", path)
}

/// Writes the gradients `grads` of `net`'s parameters to `path`, under the names and layouts
/// of [`export`] (a parameter without a gradient is written as zeros).
pub fn export_gradients(
    net: &Net,
    grads: &Gradients,
    config: &ExperimentConfig,
    path: &Path,
) -> Result<(), TrainError> {
    struct ToGrads<'a>(&'a Gradients);
    impl ModuleMapper for ToGrads<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let value = param.val();
            let grad = value
                .grad(self.0)
                .unwrap_or_else(|| value.zeros_like().inner());
            Param::from_tensor(grad)
        }
    }
    // Mapped on the autodiff network (whose parameters the gradients belong to); the mapped
    // parameters are plain tensors.
    let grads_net = net.clone().map(&mut ToGrads(grads));
    save_net(&grads_net, config, "gradients", path)
}

/// Reads a file written by [`export`] (or by PyTorch with the same names) into `net`, which
/// `config` built. The file's architecture and network settings must match when recorded;
/// every tensor must be present with the right shape, and none may be left over.
pub fn import(net: &mut Net, config: &ExperimentConfig, path: &Path) -> Result<(), TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| store_error(path, format!("not a safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if let Some(arch) = meta.get(META_ARCH)
        && arch != config.arch.name()
    {
        return Err(store_error(
            path,
            format!(
                "holds a {arch} network but the experiment trains arch = \"{}\"",
                config.arch.name()
            ),
        ));
    }
    if let Some(stored) = meta.get(META_NETWORK) {
        let stored: serde_json::Value = serde_json::from_str(stored)
            .map_err(|e| store_error(path, format!("unreadable {META_NETWORK}: {e}")))?;
        let ours: serde_json::Value =
            serde_json::from_str(&network_json(config)).expect("our own JSON");
        let differ = differing_keys(&stored, &ours, "");
        if !differ.is_empty() {
            return Err(store_error(
                path,
                format!(
                    "was exported from another [{}] configuration; differing keys: {}",
                    config.network_section(),
                    differ.join(", ")
                ),
            ));
        }
    }
    let names: Vec<String> = header.tensors().keys().cloned().collect();
    let mut store =
        SafetensorsStore::from_bytes(Some(bytes)).with_from_adapter(PyTorchToBurnAdapter);
    for (from, to) in from_torch(config.arch) {
        store = store.with_key_remapping(from, to);
    }
    let result = match net {
        Net::Capsnet(m) => m.load_from(&mut store),
        Net::EfficientCapsnet(m) => m.load_from(&mut store),
        Net::BaselineCnn(m) => m.load_from(&mut store),
    }
    .map_err(|e| store_error(path, format!("does not fit the network: {e}")))?;
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| format!("{e:?}")).collect();
        return Err(store_error(
            path,
            format!("does not fit the network: {}", errors.join("; ")),
        ));
    }
    if !result.unused.is_empty() {
        return Err(store_error(
            path,
            format!(
                "holds tensors the network has no place for: {} (file tensors: {})",
                result.unused.join(", "),
                names.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Dotted keys whose values differ between two JSON objects (`prefix` for recursion).
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value, prefix: &str) -> Vec<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let null = Value::Null;
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    differing_keys(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), &key)
                })
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec![format!("{prefix} ({a} in the file, {b} here)")],
    }
}

/// The files [`reference_batch`] writes beside `out`: `<stem>.batch.safetensors` and
/// `<stem>.grads.safetensors`.
pub fn reference_paths(out: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let dir = out.parent().unwrap_or(Path::new(""));
    (
        dir.join(format!("{stem}.batch.safetensors")),
        dir.join(format!("{stem}.grads.safetensors")),
    )
}

/// One training-mode step of `net` (on an autodiff device) on the first `n` examples of
/// `source`, written for a cross-framework check: the batch (`images` `[n, C, H, W]` in
/// `[0, 1]`, `labels` i64) with capsnet's `lengths` (class scores), `reconstruction` (decoder
/// masked by the true labels, as in training), `margin_loss`, `reconstruction_loss` (the per-image sum of squared errors, unweighted)
/// and `loss`, and the step's gradients under the weights' names.
pub fn reference_batch(
    net: &Net,
    config: &ExperimentConfig,
    source: &std::sync::Arc<dyn capsnet_data::BatchSource>,
    n: usize,
    out: &Path,
    device: &burn::tensor::Device,
) -> Result<Vec<std::path::PathBuf>, TrainError> {
    use capsnet_data::{Loader, LoaderConfig};
    use safetensors::{Dtype, tensor::TensorView};
    if n > source.len() {
        return Err(TrainError::Invalid(format!(
            "--reference-batch {n}: the test set has only {} examples",
            source.len()
        )));
    }
    let batch = Loader::from_source(source.clone(), LoaderConfig::new(n))?
        .next()
        .expect("a non-empty test set has a batch")?;
    let shape = batch.shape().to_vec();
    let images = batch.images.clone();
    let labels: Vec<i64> = batch.labels.clone();
    let (inputs, targets) = crate::net::batch_tensors(batch, device);
    let step = net.step(inputs, &targets, &config.loss, true);
    use crate::net::f32_values;
    let read2 = |t: Tensor<2>| (t.dims().to_vec(), f32_values(t));
    let grads = step.total.backward();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push_f32 = |name: &str, dims: Vec<usize>, values: &[f32]| {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name.into(), Dtype::F32, dims, bytes));
    };
    push_f32("images", shape, &images);
    let (dims, lengths) = read2(step.scores);
    push_f32("lengths", dims, &lengths);
    if let Some(recon) = step.reconstructions {
        let (dims, values) = read2(recon);
        push_f32("reconstruction", dims, &values);
    }
    if let Some(margin) = step.margin {
        push_f32("margin_loss", vec![1], &f32_values(margin));
    }
    if let Some(recon) = step.reconstruction {
        push_f32("reconstruction_loss", vec![1], &f32_values(recon));
    }
    push_f32("loss", vec![1], &f32_values(step.total));
    tensors.push((
        "labels".into(),
        Dtype::I64,
        vec![labels.len()],
        labels.iter().flat_map(|v| v.to_le_bytes()).collect(),
    ));
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, dims, bytes)| {
            (
                name.clone(),
                TensorView::new(*dtype, dims.clone(), bytes).expect("sizes match"),
            )
        })
        .collect();
    let meta = std::collections::HashMap::from([
        (META_ARCH.to_string(), config.arch.name().to_string()),
        (META_NETWORK.to_string(), network_json(config)),
        (META_CONTENT.to_string(), "reference batch".to_string()),
        (
            "capsnet.loss".to_string(),
            serde_json::to_string(&config.loss).expect("loss config serialises"),
        ),
    ]);
    let (batch_path, grads_path) = reference_paths(out);
    let bytes =
        safetensors::serialize(views, Some(meta)).map_err(|e| store_error(&batch_path, e))?;
    crate::run_dir::write_atomic(&batch_path, &bytes)?;
    export_gradients(net, &grads, config, &grads_path)?;
    Ok(vec![batch_path, grads_path])
}
