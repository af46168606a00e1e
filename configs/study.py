r"""The study: annotation bootstrapping (AB) against its base methods, probed, over seeds.

Run:
  .venv/bin/python -m avrl_jax.study --config configs/study.py:core --workdir workdir/study_core

Variants (`--config configs/study.py:VARIANT`):
  smoke      SimCLR vs AB_SimCLR on configs/default.py:smoke, 1 seed, tiny probes (tests;
             about 2 minutes on 2 CPU cores);
  core       SimCLR and DINO, each against its AB version, 2 seeds, wall-clock-matched bases;
  full       core plus CLIP / AB_CLIP / CLIP +Aug and labels on curated data (bootstrapping
             on the scenes), 3 seeds;
  ablations  AB_SimCLR: gamma 0 / 0.5 / 0.9, no target network, no action tokens, next
             actions "views" vs "grid", return action excluded or not; 2 seeds.

What to edit:
- `common_overrides(...)`: training config fields (dotted) set in every run of a variant,
  e.g. "total_steps": 500; `method(...)`'s `overrides`: one method's own, applied after them.
  Each becomes a `--config.<field>=<value>` flag of the training command (a field whose
  default is None cannot be set that way).
- `probes`: tasks and their sizes and probe steps (`PROBE_CORE`: about 30-40 s per task per
  encoder on 2 CPU cores).
Every run trains `train_config:<args>` with seed=<seed> (the data set's seed stays fixed).

Measured (:core, 2 seeds, 2 CPU cores, 39 min in all; docs/study_core/study.md): no encoder,
AB or base, trained or random, is above chance on `object_in_box` (6.6-8.0% linear, majority
6.3%), and the colour-invariant-pixel baseline (33.9%) beats them all. The ms/step column of
that run is noisy (other work shared the 2 cores during DINO's runs), so its wall-clock-matched
step counts (simclr 516, dino 764 steps) are approximate.

Why the embedded benchmark is not informative yet (the regime the issue asks for is not found).
Each line: what was tried, what it gave; object_in_box linear, test %, 3000/1000 objects,
random-init vs trained unless said otherwise; one seed.
- Pixel baselines (linear, 5000/1000): raw 12.8, colour-invariant (|x - mean colour|) 34.8;
  with objects kept apart (scenes max_overlap=0.1) raw 15.3, colour-invariant 45.0.
- Supervised upper bound: the same ViT-Ti/8 (depth 4, 32 px) trained end to end with labels
  on the probe's 5000 train views (AdamW 1e-3, flips, batch 64): 18.4 after 1500 steps (train
  loss 1.30: it memorises); patch 4 instead of 8: 12.8 (4x slower); objects apart: 20.3; the
  same views made colour-invariant before the ViT: 38.1. So colour (each object has a random
  one of 12) and the ViT's data hunger, not a bug in the probe, keep even labels below the
  pixel baseline at this size.
- SimCLR base only, 500 steps: hue jitter 0.5 (full circle) 6.4 vs 7.9; plus larger objects
  (object_scale 0.4-0.8) 6.2 vs 8.2; plus background contrast 0.3 and objects 0.3-0.7
  7.6 vs 8.9; 2000 steps with hue 0.5 6.4 vs 6.6; objects apart 9.6 vs 8.1. On the clean
  `objects` the trained encoder is worse than its random start (57 vs 66 linear).
- DINO base only, 500 steps: DINO's 0.04 -> 0.07 teacher warmup with momentum 0.996 collapses
  to the uniform (teacher entropy 5.29 of ln 256 = 5.55, base/loss flat at 5.43), 7.6 vs 6.4;
  momentum 0.95 with the warmup also collapses (5.38), 8.9 vs 6.4; momentum 0.95 with a
  constant 0.04 does not (entropy 3.95), 7.4 vs 6.4 (what configs/default.py:dino now runs).
Second round (conv stem, model.encoder.stem="conv"; object_in_box linear, trained vs random
init, 3000/1000 objects, one seed; "sup" = the supervised upper bound above):
- The patch stem is why even labels fail on box views: sup with the same ViT-Ti/8 depth 4,
  AdamW 1e-3 cosine, wd 0.05, batch 64, flips, 1500 steps: patch stem 6.9 (loss 2.92, the
  prior's entropy), conv stem 44.9, a plain 4-layer CNN 34.7; the conv stem beats the
  colour-invariant pixels (34.8). But sup with the conv stem at 500 steps x 32 (the images a
  pretraining run sees here): 6.9 (loss 2.95), and with learning rate 3e-3 or 1e-2 instead
  of 1e-3: 6.2 and 6.2: nothing is learned from 16k images, whatever the step size. Sup on
  whole scenes for their primary label (conv, 1500 x 64, 5000 train scenes): 6.9 (train loss
  2.71: it memorises).
- SimCLR base only with the conv stem, 500 steps: default scenes 7.2 vs 7.0; objects apart,
  larger (0.3-0.7) and background contrast 0.3: 7.7 vs 9.2; with contrast 0 and hue jitter 0.5:
  8.6 vs 11.2 (pixels: raw 19.2, colour-invariant 48.5); contrast 0.3, hue 0.5: 9.2 vs 9.2
  (colour-invariant 46.2); objects 0.5-0.9: 6.5 vs 8.7 (colour-invariant 24.4); 2000 steps on
  the default scenes: 8.4 vs 7.0. DINO base only, conv, 500 steps: 7.5 vs 7.0. Labels base
  only on the scenes, conv, 500 steps: 7.2 vs 7.0, and with objects 0.5-0.9 5.6 vs 8.7 (loss
  2.938: the prior's entropy).
- SimCLR conv trained on the clean object images instead (data.name="objects"), 500 steps:
  the `objects` probe 78.5 vs 66.1 random (raw pixels 76.6): it learns shapes there, but that
  transfers little to object_in_box (9.0 vs 7.0).
- Longer, 3000 steps (96k images, as many as the supervised bound above): labels on the
  scenes, conv: 7.2 vs 7.0 (base/loss 2.961, still the prior's entropy); SimCLR, conv: 7.6 vs
  7.0 (base/loss 1.985: it learns, but not the objects; `objects` 66.5 vs 66.1).
So length alone does not do it: with 96k images the supervised ViT learns the tight box views
(44.9) but neither labels nor SimCLR learn objects from the scenes' views. What differs is the
object's size in the view: a box view shows the object across most of its 32 pixels, a scene
view (a crop of the 64-px canvas rendered at 32 px) shows objects of ~4-20 px. Next lever: views
that show objects large (env.view_size = the canvas, or crops that zoom in), with the conv
stem; then longer runs (an accelerator).
Third round (conv stem; object_in_box linear, 3000/1000 objects; "sup" = the supervised
bound, `benchmarks/supervised_bound.py --steps 1000` (labels on the probe's 5000 box views,
1000 steps x 32, AdamW 1e-3), seeds 0/1/2, mean +- s.e.):
- Sup learns the box views in 1000 steps on every scene setting tried: default scenes
  23.1/20.0/21.0 (21.4 +- 0.9), background_contrast 0.3 18.2/25.4/30.2 (24.6 +- 3.5; not
  significantly better), contrast 0.3 with objects 0.4-0.8 kept apart 30.4 (seed 0). One
  earlier run of the same setup (a one-off script drawing batches with replacement) stayed at
  the prior on the default scenes (7.6, loss 2.935) while reaching 28.9 at contrast 0.3: at
  ~1000 steps training takes off or not, seed by seed, so single runs mislead here. The
  budget of a pretraining run (32k views) is enough for labelled box views to teach shape.
- The pretraining runs on the easier scenes (contrast 0.3, 1500 steps, probes on the same
  scenes, one seed) all stay at chance: labels base only 6.5 vs 9.8 random (base/loss 2.956:
  still the prior's entropy); SimCLR 9.9 vs 9.8 (base/loss 2.45); DINO 7.6 vs 9.8 (base/loss
  4.92); SimCLR with objects 0.4-0.8 kept apart too 8.3 vs 10.4. So what separates sup from
  pretraining here is the view: a box view shows one object filling the frame with its
  label; a pretraining view is a crop of the whole scene (for labels, the class of the
  scene's largest object, often not in the crop).
Next: pretraining views that are object-sized (annotation crops of scale ~0.05-0.3 at a
64-px render, or the probe's own box views as a curated source).
Fourth round (conv stem and pool="gap" unless said; object_in_box linear, 3000/1000 objects,
one seed, trained vs random init; "easy" = background_contrast 0.3 and max_overlap 0.1 in both
pretraining and probe; 1000 steps x 32 images, fewshot_eval and image summaries off). Commands:
  python -m avrl_jax.main --config configs/default.py:base_only --workdir DIR \
    --config.total_steps=1000 --config.model.encoder.stem=conv --config.model.encoder.pool=gap \
    --config.fewshot_eval.every_steps=0 --config.image_summaries.every_steps=0 \
    --config.data.source_kwargs.background_contrast=0.3 \
    --config.data.source_kwargs.max_overlap=0.1 [--config.data.name=object_views] \
    [--config.annotation_crops.augment.jitter_prob=1.0 \
     --config.annotation_crops.augment.hue=0.5 --config.annotation_crops.augment.grayscale_prob=0.5]
  (`:dino,base_only` / `:labels,base_only` for the others), then
  python -m avrl_jax.probe --workdir DIR --config configs/probe_scene_object.py \
    --config.task.background_contrast=0.3 --config.task.max_overlap=0.1 \
    --config.task.num_train=3000 --config.task.num_test=1000 [--random_init]
- Supervised, 500 steps x 32 (`benchmarks/supervised_bound.py --steps 500 --pool gap
  [--learning_rate 3e-3 | --patch_size 4 | --depth 2]`), default scenes: 9.7 (loss 2.89),
  lr 3e-3 10.0, patch 4 8.1, depth 2 8.4: at the prior still. A plain 4-layer CNN (3x3 convs,
  LN, GELU, mean pool; a throwaway script) stays at the prior's loss until step ~400 and reaches
  19.4 at step 1000 (default scenes). On the easy scenes the conv/gap ViT takes off at step
  ~300 (the throwaway script's curve) and reaches 24.9 at 600 (`supervised_bound.py --steps 600
  --pool gap --task background_contrast=0.3 --task max_overlap=0.1`; loss 2.23). So the
  default scenes are hard even with labels at this budget; the easy ones are learnable.
- SimCLR base only, easy scenes: 9.0 vs 9.9 (base/loss 2.765 of ln 63 = 4.14). With strong
  colour augmentation (jitter p 1, hue 0.5, saturation 0.8, grayscale 0.5, crops 0.08-1): NT-Xent
  stayed at chance (4.13-4.14) for 325 steps; stopped there.
- Labels base only, easy scenes, whole-scene crops (annotation_crops.scale 0.9-1): 13.4 vs 9.9
  (base/loss 2.945: the prior's entropy).
- The probe's own distribution as the pretraining data (`data.name=object_views`: each image is
  one object's box view of a scene, enlarged 1.25x and square, as object_in_box shows it), easy
  scenes: SimCLR 9.8 vs 9.9 (base/loss 2.345: it tells the views apart, yet learns nothing of
  the class); DINO (2 x 32 px + 4 x 16 px crops) 8.4 vs 9.9 (base/loss 4.90 of ln 256 = 5.55);
  SimCLR with hue 0.5 (full circle, p 1) and grayscale 0.5 (the object colour no longer an
  instance cue): 11.1 vs 9.9 (base/loss 3.66), 1.2 points up, one seed.
- The same SimCLR with hue 0.5 and grayscale 0.5 on flat backgrounds (background_contrast 0,
  objects apart; probe on the same scenes): 11.4 vs 11.0 (base/loss 3.64). With neither the
  object's colour nor a background texture left as an instance cue, it still learns nothing of
  the class.
So neither the view's scale (the probe's own views) nor the colour and background shortcuts
keep SimCLR and DINO at chance: at 1,000 steps x 32 images they learn no class information on
these objects at all, where labels on the same views need ~300 steps to leave the prior and
600 to reach 24.9 (easy scenes, above). Self-supervision is far slower than that here, and the
budget of a 100-minute study on 2 CPU cores (~1,000 steps per run) does not reach where it
starts to pay. Next: longer runs on an accelerator (the `:core` grid at 10-30k steps), or a
probe target that a self-supervised encoder reaches within this budget.
Fifth round (2026-12-07; "easy" scenes and conv/gap as in the fourth round, object_views data).
Was it a bug, given that labels in the trainer never left the prior while the supervised
bound learns the same views? No, measured:
- `:labels,base_only` on object_views, crops 0.9-1, 800 steps: base/loss 2.93 at step 800
  (base/accuracy 6%). `benchmarks/supervised_bound.py --steps 800 --pool gap` on the probe's
  5000 views: 31.5% test (train loss 1.89); on 25,600 views seen once (`--num_train 25600`):
  29.7% (2.13); with the trainer's own head (MLP 512 -> 128, unit norm, cosine logits, learned
  temperature 10, class table) in place of the linear one: 24.5% (2.24); fed the trainer's own
  crops of object_views (`train_step.annotation_crops`): 24.2% (2.34). The data stream, the
  labels (checked on a rendered batch), the crops and the head all learn outside the trainer.
- The trainer's model and loss (`compute_losses`) in a plain AdamW loop: the same plateau at
  the prior (2.95 at step 400); with a freshly built ViT + head on the same stream: 2.95 at
  step 600; both on a fixed set of 8,000 views: leave the prior at step ~450 (2.77 / 2.76 at
  step 800). So nothing in the trainer is wrong: the objective sits on a plateau at the class
  prior for 400+ steps, and how long depends on the data order and the init (the third
  round's seed-by-seed take-off).
- What shortens the plateau (fresh ViT + head, stream data, train loss per 100 steps at step
  600): nothing 2.95; batch-centring and -scaling the pooled features before the head (what
  BN in SimCLR's projection head does) 2.75; grayscale inputs 2.95; both 2.15 (off the prior
  by step 200). At init the conv stem's pooled features of different views have mean cosine
  0.78 (the patch stem's 0.31): a shared component that the cosine head sees as one query.
- SimCLR base only with that batch-centring in the head, 1000 steps: base/loss 2.09 on the
  easy scenes (2.77 without) and 2.03 on object_views (2.35 without), but object_in_box
  linear 11.0 and 12.8 (random init 9.9); with hue 0.5 (p 1) and grayscale 0.5 as well:
  11.2 and 9.0 (base/loss 3.50 / 3.62). Faster instance discrimination, no class information.
So the fifth round finds no bug and no regime; the head's batch-centring is not in the code
(one seed, within the probe's noise of ~1 point).
Sixth round (2026-12-07): the batch-centring became `model.head_batch_norm` (BatchNorm without
scale and bias at the input of the image projection heads, running statistics in the train
state; off by default). SimCLR base only, object_views, easy scenes, conv/gap, 3000 steps,
seeds 0 and 1, object_in_box linear / MAP / kNN (k=20), mean +- s.e.:
- head_batch_norm=True: 15.6/14.7/10.2 and 17.2/18.2/11.6 -> linear 16.4 +- 0.8, MAP 16.5 +- 1.8,
  kNN 10.9 +- 0.7 (base/loss 1.56 / 1.47); seed 0 at steps 1000/2000/3000: linear 13.9/15.0/15.6.
- without it: 11.2/14.6/9.8 and 11.3/14.1/10.3 -> 11.3 +- 0.1, 14.4 +- 0.3, 10.1 +- 0.3
  (base/loss 1.85 / 1.74).
- random init (each seed's): 9.6/13.2/8.2 and 10.9/11.9/8.1 -> 10.3 +- 0.7, 12.6 +- 0.7, 8.2.
Paired difference with - without, linear: +4.4 and +5.9 (+5.2 +- 0.8 points); MAP +0.1 and
+4.1. The first SimCLR setting here to learn class information (1.6x random on linear), still
short of the 2x criterion and far below colour-invariant pixels (~46%). Not yet the default:
the `:core` table in README was measured without it, and DINO with it is not measured.

Seventh round (2026-12-07): g now embeds the crops and the bootstrap views in one call per
forward pass (before, SimCLR called it a second time on crop 2 for its annotations, so with
head_batch_norm the running statistics moved more than once per step, and AB's rewards compared
view and annotation queries normalised apart). Base-only SimCLR's encoder training does not
change with it (NT-Xent uses the crop queries only): seed 1 reproduces the sixth round's
17.2/18.2/11.6 exactly. The sixth round's seed-0 run had used an earlier uncommitted patch;
with the committed code, seed 0 gives 18.5/14.7/10.7 (base/loss 1.50). Same setup as the sixth
round, object_in_box linear / MAP / kNN (k=20), mean +- s.e. over seeds 0 and 1:
- SimCLR + head_batch_norm: linear 17.9 +- 0.7, MAP 16.5 +- 1.8, kNN 11.2 +- 0.5, against
  random init 10.3 +- 0.7 / 12.6 +- 0.7 / 8.2 (1.7x random on linear); paired difference with -
  without the head BatchNorm, linear +7.3 and +5.9 (+6.6 +- 0.7 points), MAP +2.1 +- 2.0.
- AB_SimCLR + head_batch_norm at equal views (16 images x 2 crops + 8 x 4 bootstrap views),
  seed 0: 9.1/9.3/7.9, at or below its random init. Its value function does learn (value
  accuracy 0.42 at IoU < 0.01 to 0.72 at IoU > 0.8 of 16 annotations; ab/kl 0.16, target
  entropy 1.85 of ln 16 = 2.77).
- The control: SimCLR + head_batch_norm base only with AB's annotation batch (16 images, 32
  views per step), seed 0: 9.9/9.2/7.8, also at random (base/loss 1.70 of ln 31 = 3.43). So the
  equal-views convention, which halves the base's batch, is enough to lose the class
  information at this budget; the AB term is not shown to be what removes it. The fair next
  test keeps the base's 32 images and adds the bootstrap views (AB at equal steps, and the base
  trained for AB's wall-clock time).
- `:curated` + head_batch_norm (labels on the object images, AB on the easy scenes), 3000
  steps: object_in_box 11.4/12.6/10.0; the localise probe (configs/probe_localise.py, easy
  scenes) mean IoU 0.070 (IoU >= 0.5: 2%) against a random box 0.139, the centre box 0.160, the
  whole image 0.121 and the random-init search 0.104.
Eighth round (2026-12-07): AB with the base's own batch. AB_SimCLR + head_batch_norm with
annotation batch 32 (SimCLR's 32 images x 2 crops) plus bootstrap batch 8 x 4 views (`:` with
--config.annotation_batch_size=32 --config.bootstrap_batch_size=8, the same flags otherwise),
against SimCLR + head_batch_norm of the seventh round, equal steps (3000), seeds 0 and 1,
object_in_box linear / MAP / kNN (k=20):
- AB: 12.4/18.2/12.3 and 17.4/16.4/11.0 -> linear 14.9 +- 2.5, MAP 17.3 +- 0.9, kNN 11.7 +- 0.7
  (base/loss 1.57 / 1.49; SimCLR's 1.50 / 1.47).
- Paired AB - SimCLR: linear -6.1 and +0.2 (-3.0 +- 3.2), MAP +3.5 and -1.8 (+0.9 +- 2.7), kNN
  +1.6 and -0.6 (+0.5 +- 1.1): no difference that two seeds resolve, either way.
- The value function learns in both (value accuracy at IoU < 0.01 0.46 / 0.28, at IoU > 0.8
  0.68 / 0.74, of 32 annotations; ab/kl 0.21 / 0.21; target entropy 2.21 / 2.26 of ln 32 =
  3.47; action sensitivity 0.26 / 0.29). An AB step costs ~1.9x a SimCLR step here (the
  runs' fastest logged rates 1.5-1.6 vs 2.9-3.0 steps/s; medians 0.83 vs 1.6, under other
  load), so the wall-clock-matched base (~5,700 steps) is still to run.
Ninth round (2026-12-07): the wall-clock-matched base, a gamma lever, and labels on the
object views. Same setup and probe as the eighth round unless said.
- SimCLR + head_batch_norm for 5,700 steps (its own cosine schedule; the AB runs' wall-clock
  time at ~1.9x a SimCLR step): seed 0 23.5/19.0/15.5 (base/loss 1.16), seed 1 24.1/18.4/16.2
  (1.30): linear 23.8 +- 0.3, MAP 18.7 +- 0.3, kNN 15.9 +- 0.4; 2.3x random init (10.3 +- 0.7)
  on linear, so the issue's 2x criterion is met for SimCLR (still far below the colour-invariant
  pixels, ~46%; DINO not re-measured). At equal wall-clock, AB (3000 steps, eighth round) -
  SimCLR (5700), paired: linear -11.1 and -6.7 (-8.9 +- 2.2), MAP -0.8 and -2.0 (-1.4 +- 0.6),
  kNN -3.2 and -5.2 (-4.2 +- 1.0): here AB_SimCLR is worse than its base at equal compute.
- AB_SimCLR + head_batch_norm at gamma 0 (`:gamma0`, 32 + 8 x 4, 3000 steps), seed 0:
  15.0/15.8/12.1 (gamma 0.5, seed 0: 12.4/18.2/12.3; SimCLR seed 0: 18.5/14.7/10.7). Its value
  function learns more sharply than at gamma 0.5 (value accuracy 0.39 at IoU < 0.01 to 0.79
  at IoU > 0.8; target entropy 1.64 of 3.47, all reward), but one seed resolves nothing
  against gamma 0.5's seed-to-seed spread (12.4 and 17.4 linear), so the default stays 0.5,
  unsupported either way.
- Labels on the scenes' object views with bootstrapping on the scenes
  (`configs/default.py:curated_views`, head_batch_norm, crops 0.5-1, grayscale 0.5; README
  "Value maps"): object_in_box 41.1/35.8/33.3, 4x random init and near the colour-invariant
  pixels (~46%); the same with the grey object images on black (`:curated`): 11.4/12.6/10.0.
Tenth round (2026-12-08): AB against its base where the base is labels (`:curated_views`,
labels on the scenes' object views, bootstrapping on the scenes; head_batch_norm, crops 0.5-1,
grayscale 0.5, 3000 steps, seed 0, the ninth round's flags and probe), and the pixel baselines
measured on exactly this probe (3000/1000 objects, easy scenes): raw 17.5 linear / 20.2 kNN,
colour-invariant 54.9 / 50.5 (the "~46%" above came from other probe sizes).
- AB gamma 0 (`:curated_views,gamma0`): 51.7/52.6/47.3; gamma 0.5: 41.1/35.8/33.3; labels
  alone (`--config.objective.ab_weight=0`): 41.9/22.7/36.6. At equal steps AB gamma 0 - labels
  is +9.8 linear, +29.9 MAP, +10.7 kNN (one seed). base/loss at step 3000: 1.71 (gamma 0) vs
  2.12 (alone). Decoder probe (configs/probe_decoder.py, same flags): 48.9 vs 15.2 for the
  random init.
- An AB step costs 2.8x a labels step here (0.476 vs 0.171 s/step over the whole runs), so the
  equal-wall-clock base is labels alone for 8,300 steps: 76.0/75.8/75.5 (base/loss 0.91; 1,206
  s of training against AB gamma 0's 1,415 s), above the colour-invariant pixels; AB gamma 0 -
  labels at equal wall-clock: -24.3 linear, -23.2 MAP, -28.2 kNN (one seed). Its localise
  diagnostics: reward/box_accuracy 0.76, reward map 0.413 (IoU >= 0.5: 48%).
- DINO base only with head_batch_norm (`:dino,base_only`, object_views, the same flags), 3000
  steps, seed 0: 9.6/7.1/7.7, at random init (9.6/13.2/8.2); it collapses partly (teacher
  marginal entropy 1.71 of ln 256 = 5.55, teacher entropy 1.11, base/loss 1.54).
- Q still does not fit even its one-step targets: at step 3000 ab/kl 0.50, Q's entropy 2.77
  against the targets' 2.26 (ln 20 = 3.00); value accuracy 0.13 (IoU < 0.01) to 0.50 (IoU >
  0.8). Localise (README "Value maps"): search 0.115, value map 0.117 against the reward map's
  0.314.
"""

import ml_collections

VARIANTS = ("smoke", "core", "full", "ablations")
TRAIN_CONFIG = "configs/default.py"

# Probe settings of the core / full / ablations studies: smaller than the probe configs'
# defaults (~1.5 min per task per encoder on 2 cores) so that ~15 encoders x 3 tasks fit.
PROBE_CORE = {
    "task.num_train": 3000,
    "task.num_test": 1000,
    "linear.steps": 500,
    "linear.learning_rates": (1e-3, 1e-2, 1e-1),
    "linear.weight_decays": (0.0, 1e-3),
    "map.steps": 300,
    "map.warmup_steps": 30,
    "fewshot.enabled": False,  # the study reports linear, MAP, kNN and the decoder probe
    "decoder.enabled": True,
    "decoder.steps": 300,
    "decoder.warmup_steps": 30,
}
# A few probe steps on tiny tasks: the smoke study's (tests).
PROBE_SMOKE = {
    "batch_size": 64,
    "task.num_train": 64,
    "task.num_test": 32,
    "task.canvas_size": 32,
    "linear.steps": 10,
    "linear.batch_size": 64,
    "linear.learning_rates": (1e-2,),
    "linear.weight_decays": (0.0,),
    "map.steps": 4,
    "map.warmup_steps": 1,
    "map.batch_size": 32,
    "fewshot.enabled": False,
    "decoder.enabled": True,
    "decoder.steps": 4,
    "decoder.warmup_steps": 1,
    "decoder.depth": 1,
    "decoder.batch_size": 32,
}
PROBE_TASKS = (
    ("object_in_box", "configs/probe_scene_object.py"),
    ("count", "configs/probe_count.py"),
    ("objects", "configs/probe_objects.py"),
)


# Equal views seen (every view counts, the paper's convention): an AB run puts half of its
# base's views per step into the annotation batch and half into bootstrap views (4 per image).
# SimCLR: 32 images x 2 crops = 64 views; AB: 16 x 2 + 8 x 4 = 64. DINO: 32 x (2 global + 4
# local) = 192; AB: 16 x 6 + 24 x 4 = 192. Smoke: 16 x 2 = 32; AB: 8 x 2 + 4 x 4 = 32.
AB_SIMCLR_VIEWS = {"annotation_batch_size": 16, "bootstrap_batch_size": 8}
AB_DINO_VIEWS = {"annotation_batch_size": 16, "bootstrap_batch_size": 24}
# CLIP and labels: one crop per image, 32 views; AB: 16 + 4 x 4 = 32.
AB_ONE_CROP_VIEWS = {"annotation_batch_size": 16, "bootstrap_batch_size": 4}
AB_SMOKE_VIEWS = {"annotation_batch_size": 8, "bootstrap_batch_size": 4}


def method(name: str, args: str, pair: str = "", overrides: dict | None = None) -> dict:
    """One method: `args` are the training config's variants; `pair` names the base method an
    AB method is compared with (paired differences AB_x - x over seeds); `overrides` its own
    dotted training config fields."""
    return dict(name=name, args=args, pair=pair, overrides=dict(overrides or {}))


def common_overrides(fields: dict) -> ml_collections.ConfigDict:
    """Dotted training config field -> value, set in every run (a ConfigDict that takes dotted
    keys, so the study config stays one ConfigDict)."""
    return ml_collections.ConfigDict(fields, allow_dotted_keys=True)


def probes(overrides: dict) -> tuple[dict, ...]:
    return tuple(
        dict(name=name, config=path, overrides=dict(overrides)) for name, path in PROBE_TASKS
    )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "core"
    if variant not in VARIANTS:
        raise ValueError(f"configs/study.py: unknown variant {variant!r}; valid: {VARIANTS}")
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.train_config = TRAIN_CONFIG
    c.seeds = (0, 1)
    # The in-loop few-shot signal only costs time here: the study probes the final encoders.
    c.common_overrides = common_overrides({"total_steps": 500, "fewshot_eval.every_steps": 0})
    c.methods = (
        method("simclr", "base_only", overrides={}),
        method("ab_simclr", "", pair="simclr", overrides=AB_SIMCLR_VIEWS),
        method("dino", "dino,base_only", overrides={}),
        method("ab_dino", "dino", pair="dino", overrides=AB_DINO_VIEWS),
    )
    # Base methods (with an AB pair) that also train for their AB run's wall-clock time.
    c.wallclock_matched = ("simclr", "dino")
    c.probes = probes(PROBE_CORE)
    c.pixel_baselines = ("raw", "colour_invariant")
    c.random_init = True  # probe each seed's randomly initialised encoder

    if variant == "smoke":
        c.seeds = (0,)
        c.common_overrides = common_overrides({"fewshot_eval.every_steps": 0})
        c.methods = (
            method("simclr", "smoke,base_only"),
            method("ab_simclr", "smoke", pair="simclr", overrides=AB_SMOKE_VIEWS),
        )
        c.wallclock_matched = ("simclr",)
        c.probes = probes(PROBE_SMOKE)
    elif variant == "full":
        c.seeds = (0, 1, 2)
        c.methods += (
            method("clip", "clip,base_only"),
            method("ab_clip", "clip", pair="clip", overrides=AB_ONE_CROP_VIEWS),
            method("clip_aug", "clip_aug,base_only"),  # "CLIP +Aug"
            # Labels of the curated object images; AB bootstraps on the scenes.
            method("labels", "curated,base_only"),
            method("ab_labels", "curated", pair="labels", overrides=AB_ONE_CROP_VIEWS),
        )
    elif variant == "ablations":

        def ab(name: str, overrides: dict) -> dict:
            return method(name, "", pair="simclr", overrides={**AB_SIMCLR_VIEWS, **overrides})

        c.methods = (
            method("simclr", "base_only"),
            ab("ab_simclr", {}),  # gamma 0.5, views, return kept
            ab("ab_simclr_gamma0", {"objective.gamma": 0.0}),
            ab("ab_simclr_gamma0.9", {"objective.gamma": 0.9}),
            ab("ab_simclr_no_target", {"ema.enabled": False}),
            ab("ab_simclr_no_action_tokens", {"model.value_head.use_action_tokens": False}),
            ab("ab_simclr_grid", {"objective.next_actions": "grid"}),
            ab("ab_simclr_exclude_return", {"objective.exclude_return": True}),
        )
        c.wallclock_matched = ()
    return c
