"""Break each protection and each mechanism in a scratch copy; its test must fail.

    .venv/bin/python scripts/mutation_check.py            # every mutant
    .venv/bin/python scripts/mutation_check.py mtal nddr  # those whose name contains "mtal" or "nddr"
    .venv/bin/python scripts/mutation_check.py --baseline forkserver  # their tests pass unmutated

A mutant removes or distorts one thing (a check dropped, a rule ignored, a value
scaled, frozen, made constant, or read from the wrong split) by replacing one
exact piece of source text; the named test must then fail. Prints CAUGHT or
MISSED per mutant and caught/total; exits 1 if any mutant is missed.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
SCRATCH = tempfile.mkdtemp(prefix="hetmtl-mutants-")
T_MTAL, T_METHODS, T_TRAIN = "tests/test_mtal.py", "tests/test_methods.py", "tests/test_training.py"
W_APPLY, W_REG, T_W = "src/hetmtl/weightings/apply.py", "src/hetmtl/weightings/registry.py", "tests/test_weightings.py"
MTAL, JOB = "src/hetmtl/methods/mtal.py", "src/hetmtl/training/job.py"
DELTA, RANDOM, T_DELTA = "src/hetmtl/methods/mtal_delta.py", "src/hetmtl/methods/mtal_random.py", "tests/test_mtal_delta.py"
BASE = "src/hetmtl/models/base.py"
MTDA, T_MTDA = "src/hetmtl/methods/mtda.py", "tests/test_mtda.py"
FS, T_FS, DVCY = "src/hetmtl/forkserver.py", "tests/test_forkserver.py", "src/hetmtl/dvc_yaml.py"
T_RERUN = "tests/test_pipeline.py::test_snakemake_and_dvc_rerun_exactly_what_an_edit_touches"
T_LOST = "tests/test_pipeline.py::test_a_lost_store_is_rebuilt_from_the_receipts_and_the_tables_stay_identical"
T_CRASH = "tests/test_pipeline.py::test_crashed_job_leaves_no_receipt_and_resumes_from_its_checkpoint"
PF = "src/hetmtl/preflight.py"
CLAIMS, T_CLAIMS = "src/hetmtl/reporting/claims.py", "tests/test_claims.py"
TUNE, T_TUNE = "src/hetmtl/training/tune.py", "tests/test_tune.py"
EST, T_BENCH = "src/hetmtl/bench/estimate.py", "tests/test_bench.py"
# (name, file, exact old text (occurs once), new text, test that must fail)
DATA = [  ("unsafe names", "src/hetmtl/data/archives.py", "    p = PurePosixPath(name)\n", "    return\n    p = PurePosixPath(name)\n", "tests/test_data.py::test_unsafe_members_are_refused"),
  ("links", "src/hetmtl/data/archives.py", "if info.issym() or info.islnk():", "if False:", "tests/test_data.py::test_links_are_refused"),
  ("md5 before prepare", "src/hetmtl/data/prepare.py", "    if digest != want:\n", "    if False:\n", "tests/test_data.py::test_tampered_standin_is_refused_before_prepare"),
  ("content counts", "src/hetmtl/data/prepare.py", "    if have != want:\n", "    if False:\n", "tests/test_data.py::test_archive_with_unexpected_content_is_refused"),
  ("resume", "src/hetmtl/data/download.py", 'extra = {"Range": f"bytes={have}-"} if have else {}', "extra = {}", "tests/test_download.py::test_dropped_connection_resumes_with_a_range_request"),
  ("md5 after download", "src/hetmtl/data/download.py", "            if actual != md5:\n", "            if False:\n", "tests/test_download.py::test_wrong_md5_leaves_nothing_behind"),
  ("verify placed archive", "src/hetmtl/data/fetch.py", '        verify_md5(path, source["md5"])  # placed by hand', '        pass  # placed by hand', "tests/test_data.py::test_archive_placed_by_hand_is_verified_not_downloaded"),
  ("offline message", "src/hetmtl/data/fetch.py", 'and place it at {path.resolve()}', 'and place it somewhere', "tests/test_data.py::test_offline_fetch_reports_every_missing_archive"),
  ("part file", "src/hetmtl/data/download.py", '    part = dest.with_name(dest.name + ".part")', '    part = dest', "tests/test_download.py::test_partial_download_never_sits_at_the_final_path"),
  ("truncated archive", "src/hetmtl/data/archives.py", "                        names.append(info.name.rstrip(\"/\") + \"/\")\n    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:\n        raise ArchiveError(f\"{archive}: cannot read archive", "                        names.append(info.name.rstrip(\"/\") + \"/\")\n    except ZeroDivisionError as exc:\n        raise ArchiveError(f\"{archive}: cannot read archive", "tests/test_data.py::test_truncated_archive_gives_a_clear_error"),
  # data sources as modules (issue 12): the layout registry, a user's class-folder source
  ("sources: layout not checked against the registry", "src/hetmtl/params/checks.py", "            for key, reason in source_problems(source):", "            for key, reason in []:", "tests/test_sources.py::test_the_params_layout_names_are_the_registrys"),
  ("class folders: a class without images accepted", "src/hetmtl/data/sources/class_folders.py", "        if empty:\n", "        if False:\n", "tests/test_sources.py::test_a_class_folder_without_images_fails_loudly"),
  ("class folders: any file counts as an image", "src/hetmtl/data/sources/class_folders.py", "if len(rel) == 2 and rel[1].lower().endswith(IMAGE_SUFFIXES):", "if len(rel) == 2:", "tests/test_sources.py::test_a_class_folder_without_images_fails_loudly"),
  ("class folders: top folder taken for the classes", "src/hetmtl/data/sources/class_folders.py", "strip = len(tops) == 1 and any(len(p) >= 3 for p in parts)", "strip = False", "tests/test_sources.py::test_class_folders_classify_with_and_without_a_top_folder"),
  ("class folders: user archive's md5 unchecked", "src/hetmtl/data/fetch.py", '            if actual != source["md5"]:\n', "            if False:\n", "tests/test_sources.py::test_a_wrong_md5_of_the_users_archive_is_one_line_saying_what_to_do"),
  # the real archives as they are today (issue 27): junk, odd images, Drive, web pages, doctor
  ("data: AppleDouble and __MACOSX junk counted", "src/hetmtl/data/sources/common.py", "            if is_junk(name):\n                continue\n", "", "tests/test_conformance.py::test_office31_amazon_classifies_as_the_public_list"),
  ("data: ./ prefixes of a tar not matched", "src/hetmtl/data/sources/common.py", "            m = rx.fullmatch(plain_name(name))", "            m = rx.fullmatch(name)", "tests/test_conformance.py::test_officehome_art_classifies_as_the_public_list"),
  ("data: 16-bit images clipped white", "src/hetmtl/data/prepare.py", "    img = to_8bit(Image.open(io.BytesIO(data)))", "    img = Image.open(io.BytesIO(data))", "tests/test_conformance.py::test_a_16_bit_png_decodes_to_the_same_gray"),
  ("data: a web page saved as the archive", "src/hetmtl/data/download.py", "                    if r.status_code in (401, 403) or (r.ok and looks_like_html(", "                    if False and (r.ok and looks_like_html(", "tests/test_download.py::test_a_web_page_instead_of_the_archive_is_named_as_such"),
  ("data: Drive resource key dropped", "src/hetmtl/data/download.py", '    query = {"export": "download", "id": file_id, **({"resourcekey": key} if key else {})}', '    query = {"export": "download", "id": file_id}', "tests/test_download.py::test_google_drive_with_resource_key_and_confirmation_page"),
  ("data: Drive confirmation page not followed", "src/hetmtl/data/download.py", "                        current = target\n", "", "tests/test_download.py::test_google_drive_with_resource_key_and_confirmation_page"),
  ("data: doctor trusts a wrong MD5", "src/hetmtl/doctor.py", 'as params/ say") if actual == source["md5"] else', 'as params/ say") if True else', "tests/test_doctor.py::test_archives_missing_wrong_and_right"),
  ("data: doctor exits 0 when blocked", "src/hetmtl/doctor.py", "    return text, 1 if blocked else 0", "    return text, 0", "tests/test_doctor.py::test_the_screen_and_the_exit_status"),
]
MECHANISMS = [
  # MLflow (issue 11)
  ("mlflow: no experiment kind", "src/hetmtl/tracking/mlflow_store.py", "tags={\"suite\": suite, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))", "tags={\"suite\": suite}))", "tests/test_tracking.py::test_the_experiment_is_a_model_training_one_with_its_artifacts_beside_the_store"),
  ("mlflow: no source tags", "src/hetmtl/tracking/mlflow_store.py", "            tags = {**source_tags(root, given.get(\"git_commit\")), **given}", "            tags = given", "tests/test_tracking.py::test_each_run_has_its_source_user_and_commit"),
  ("mlflow: sweep runs tagged training", "src/hetmtl/tracking/mlflow_store.py", "    return \"sweep\" if \"sweep\" in tags else \"training\"", "    return \"training\"", "tests/test_tracking.py::test_the_readmes_filter_returns_only_the_tables_runs"),
  ("mlflow: sharing logged twice at the last step", JOB, "        last = {**{k: v for k, v in final.items() if k not in last_epoch}, **budget,", "        last = {**final, **budget,", "tests/test_tracking.py::test_sharing_is_logged_once_per_step"),
  ("mlflow: log not an artifact", JOB, "        logger.log_artifact(log.path)\n        if run.log_model", "        if run.log_model", "tests/test_tracking.py::test_a_training_run_holds_its_log_and_the_model_only_when_asked"),
  ("mlflow: log_model ignored", JOB, "        if run.log_model:", "        if True:", "tests/test_tracking.py::test_a_training_run_holds_its_log_and_the_model_only_when_asked"),
  ("mlflow: no line per epoch", JOB, "        log.line(epoch_line(epoch, cfg.epochs, metrics, now - clock[\"last\"]))", "        pass", "tests/test_tracking.py::test_the_job_log_has_one_line_per_epoch"),
  ("mlflow: rebuild without artifacts", "src/hetmtl/tracking/rebuild.py", "    return [path.parent / name for name in rec.get(\"artifacts\", [])]", "    return []", "tests/test_tracking.py::test_a_rebuilt_run_gets_its_artifacts_and_kind_again"),
  # MTAL (protocol section 6)
  # MTAL's delta reading and its random_matched control (issue 28)
  ("delta: w0 not subtracted", DELTA, "d = self.bank_w[bank][idx].detach().flatten(1) - w0", "d = self.bank_w[bank][idx].detach().flatten(1)", f"{T_DELTA}::test_all_copies_start_from_one_w0_and_similarity_is_of_updates"),
  ("delta: w0's direction kept", DELTA, "        if self.project_w0:\n", "        if False:\n", f"{T_DELTA}::test_w0_direction_is_projected_out_when_asked"),
  ("delta: null on the wrong layer", DELTA, "                off = sim[~torch.eye(K, dtype=torch.bool, device=sim.device)]", "                prev = self.similarity(max(layer - 1, 0), i, j)\n                off = prev[~torch.eye(prev.shape[0], dtype=torch.bool, device=sim.device)]", f"{T_DELTA}::test_null_threshold_is_the_layers_off_diagonal_quantile"),
  ("delta: merge on weights, not updates", DELTA, "        for p, ref in pairs:\n            p.data[g] -= ref[g]\n", "        for p, ref in pairs:\n            pass\n", f"{T_DELTA}::test_merge_is_in_update_space"),
  ("delta: merge on weights (no w0 back)", DELTA, "            p.data[g] += ref[g]", "            pass", f"{T_DELTA}::test_merge_is_in_update_space"),
  ("delta: merged slot keeps its own w0", DELTA, "            ref[roots_g] = acc[roots_g] / total[roots_g].view(shape)", "            pass", f"{T_DELTA}::test_matched_merge_reference_is_weighted_by_kernel_counts"),
  ("random: another layer's count", RANDOM, "need = target.get(name, {}).get((i, j), 0)", "need = target.get(self.layer_names[-1], {}).get((i, j), 0)", f"{T_DELTA}::test_random_matched_shares_each_layers_own_count"),
  ("delta: null pairs a kernel with itself", DELTA, "    return sigma[(torch.argsort(sigma) + 1) % K]", "    return sigma", f"{T_DELTA}::test_the_null_never_pairs_a_kernel_with_itself"),
  ("delta: prior levels ignored", "src/hetmtl/methods/mtal_prior_delta.py", "seed, levels=pair_levels(R, cfg))", "seed)", f"{T_DELTA}::test_prior_levels_come_from_R"),
  ("mtal: within-task rule off", MTAL, "if ra == rb or tasks[ra] & tasks[rb]:", "if ra == rb:", f"{T_MTAL}::test_a_group_never_holds_two_kernels_of_one_task"),
  ("mtal: slots weighted equally", MTAL, "coef = counts / total[labels].clamp_min(1)", "coef = used.to(w.dtype) / size[labels].clamp_min(1).to(w.dtype)", f"{T_MTAL}::test_group_slot_holds_the_mean_weighted_by_kernels"),
  ("mtal: group keeps one member", MTAL, "            t[roots_g] = acc[roots_g]", "            pass", f"{T_MTAL}::test_group_slot_holds_the_mean_weighted_by_kernels"),
  ("mtal: alpha/beta swapped", MTAL, "coef[slots] = torch.where(owner[slots] < other,", "coef[slots] = torch.where(owner[slots] > other,", f"{T_MTAL}::test_aggregation_is_weighted_and_momentum_merged"),
  ("mtal: momentum not merged", MTAL, "                    tensors.append(buf)", "                    pass", f"{T_MTAL}::test_aggregation_is_weighted_and_momentum_merged"),
  ("mtal: match after last epoch", MTAL, "if not final and epoch >= self.warmup", "if epoch >= self.warmup", f"{T_MTAL}::test_no_matching_after_the_last_epoch"),
  ("mtal: share_every ignored", MTAL, "(epoch - self.warmup) % self.share_every == 0", "True", f"{T_MTAL}::test_matching_epochs_follow_warmup_and_share_every"),
  ("mtal: no BN re-estimate after merge", MTAL, "                self.needs_bn_recalibration = True", "                pass", f"{T_MTAL}::test_batchnorm_statistics_are_those_of_the_merged_weights"),
  ("mtal: BN re-estimate keeps old stats", "src/hetmtl/training/loop.py", "            m.reset_running_stats()\n            m.momentum = None", "            m.momentum = 0.1", f"{T_MTAL}::test_batchnorm_statistics_are_those_of_the_merged_weights"),
  ("mtal: groups by single linkage", MTAL, "            if not all(similar(t, k, u, q) for t, k in kernels[ra] for u, q in kernels[rb]):", "            if False:", f"{T_MTAL}::test_unrelated_tasks_never_share_through_a_related_third"),
  ("mtal: per-pair threshold ignored", "src/hetmtl/methods/mtal_prior.py", "thresholds=pair_thresholds(R, cfg))", "thresholds=None)", f"{T_MTAL}::test_prior_thresholds_decide_which_pairs_share"),
  ("mtal: one task's gradient lost", MTAL, "        return self.bank_w[bank][idx], (None if bias is None else bias[idx])", "        return (self.bank_w[bank][idx] if t == 0 else self.bank_w[bank][idx].detach()), (None if bias is None else bias[idx])", f"{T_MTAL}::test_shared_slot_receives_the_sum_of_both_tasks_gradients"),
  ("mtal: cosine unnormalised", MTAL, "wi = F.normalize(self.kernel(i, layer)[0].detach().flatten(1), dim=1)", "wi = self.kernel(i, layer)[0].detach().flatten(1)", f"{T_MTAL}::test_similarity_is_cosine_of_vectorised_kernels"),
  ("mtal: common start ignored", "src/hetmtl/models/base.py", "        load_backbone(net, state)", "        pass", f"{T_MTAL}::test_common_start_copies_one_backbone"),
  ("mtal: parameters saved miscounted", MTAL, "saved_params += (len(flat) - used) * per_kernel", "saved_params += (len(flat) - used) * (per_kernel - 1)", f"{T_MTAL}::test_parameter_compression_counts_the_parameters_saved"),
  ("mtal: duplicates not counted", MTAL, "duplicates += sum(", "duplicates += 0 * sum(", f"{T_MTAL}::test_within_task_duplicates_are_counted"),
  ("mtal: schedule not validated", "src/hetmtl/params/checks.py", '                    if spec[bound.key] >= epochs:', "                    if False:", f"{T_MTAL}::test_params_refuse_a_schedule_that_ends_on_a_matching"),
  ("mtal: BN re-estimated without merge", MTAL, "            if self.share(optimizer):", "            if self.share(optimizer) or True:", f"{T_MTAL}::test_rho_above_one_trains_exactly_like_single_task"),
  # the backbone contract (issue 12): any backbone through stem, stages, head and named convs
  ("backbone: shared conv ignores its stride", MTAL, "        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)", "        return F.conv2d(x, w, b, 1, self.padding, self.dilation, self.groups)", f"{T_MTAL}::test_resnet18_shared_convolutions_keep_their_stride_and_padding"),
  ("backbone: shared conv pads by one", MTAL, "        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)", "        return F.conv2d(x, w, b, self.stride, 1, self.dilation, self.groups)", f"{T_MTAL}::test_resnet18_shared_convolutions_keep_their_stride_and_padding"),
  ("backbone: per-task BN is task 0's", BASE, "            return self.copies[segs[0][0]](x)", "            return self.copies[0](x)", f"{T_METHODS}::test_hard_sharing_keeps_batchnorm_per_task"),
  ("backbone: per-task BN rows all task 0's", BASE, "self.copies[t](part) for (t, _), part", "self.copies[0](part) for (t, _), part", f"{T_METHODS}::test_cross_stitch_with_identity_mixing_equals_independent_columns"),
  ("backbone: forward_stage skips a stage", BASE, "        return self.stages[i](x)", "        return x if i == 1 else self.stages[i](x)", "tests/test_models.py::test_resnet18_through_the_contract_is_torchvisions_resnet18"),
  ("backbone: resnet gray stem not summed", BASE, "                value = value.sum(dim=1, keepdim=True)\n            else:", "                value = value.mean(dim=1, keepdim=True)\n            else:", "tests/test_models.py::test_resnet18_grayscale_stem_sums_the_imagenet_rgb_kernels"),
  ("backbone: common start stem not summed", BASE, "            value = value.sum(dim=1, keepdim=True)\n        own[key] = value.clone()", "            value = value.mean(dim=1, keepdim=True)\n        own[key] = value.clone()", f"{T_MTAL}::test_common_start_copies_one_backbone"),
  ("backbone: stage tags one block late", BASE, "            p.hetmtl_block = i\n", "            p.hetmtl_block = i + 1\n", "tests/test_models.py::test_resnet18_freeze_blocks_freezes_the_stem_and_the_first_layers"),
  ("backbone: columns skip the stem", "src/hetmtl/methods/columns.py", "        feats = [net.forward_stem(torch.cat(", "        feats = [(lambda v: v)(torch.cat(", f"{T_METHODS}::test_cross_stitch_with_identity_mixing_equals_independent_columns"),
  # MTDA (protocol section 5): the coupling through the shared projection
  ("mtda: P from one task", MTDA, "P = top_eigenvectors(sum(w.T @ sb @ w for w, sb in zip(W, Sb)), m)", "P = top_eigenvectors(W[0].T @ Sb[0] @ W[0], m)", f"{T_MTDA}::test_a_task_with_few_samples_gains_from_the_others"),
  ("mtda: P from another task", MTDA, "P = top_eigenvectors(sum(w.T @ sb @ w for w, sb in zip(W, Sb)), m)", "P = top_eigenvectors(W[-1].T @ Sb[-1] @ W[-1], m)", f"{T_MTDA}::test_objective_never_decreases_rotations_stay_orthogonal_and_p_is_the_pooled_optimum"),
  ("mtda: W-step ignores coupling", MTDA, "M = sb @ W0 @ P @ P.T + coupling * torch.eye", "M = sb @ W0 @ P @ P.T + 0.0 * torch.eye", f"{T_MTDA}::test_coupling_turns_projections_away_from_per_task_lda_and_zero_coupling_is_per_task_lda"),
  ("mtda: no within-class whitening", MTDA, "whiten = WP @ (vecs / vals.sqrt()) @ vecs.T", "whiten = WP", f"{T_MTDA}::test_one_task_predicts_exactly_what_plain_lda_predicts"),
  ("mtda: no total-scatter whitening", MTDA, "G = vh[:k].T / torch.sqrt(var + r)", "G = vh[:k].T", f"{T_MTDA}::test_one_task_predicts_exactly_what_plain_lda_predicts"),
  ("mtda: no sign convention", MTDA, "sign = torch.where(y.pow(3).sum(0) < 0, -1.0, 1.0).to(x.dtype)", "sign = torch.ones(k, dtype=x.dtype)", f"{T_MTDA}::test_common_coordinates_have_positive_third_moment_and_ignore_the_features_sign"),
  ("mtda: W not orthogonal", MTDA, "    return U @ Vh\n", "    return U @ torch.diag(_) @ Vh\n", f"{T_MTDA}::test_objective_never_decreases_rotations_stay_orthogonal_and_p_is_the_pooled_optimum"),
  ("mtda: W-step descends", MTDA, "M = sb @ W0", "M = -sb @ W0", f"{T_MTDA}::test_objective_never_decreases_rotations_stay_orthogonal_and_p_is_the_pooled_optimum"),
  ("mtda: P bottom eigenvectors", MTDA, "return vecs[:, -m:].flip(1)", "return vecs[:, :m]", f"{T_MTDA}::test_one_task_predicts_exactly_what_plain_lda_predicts"),
  ("mtda: no W-step", MTDA, "W = [w_step(sb, w, P, coupling) for w, sb in zip(W, Sb)]", "W = W", f"{T_MTDA}::test_coupling_turns_projections_away_from_per_task_lda_and_zero_coupling_is_per_task_lda"),
  ("mtda: objective without penalty", MTDA, " - coupling * (w - eye).pow(2).sum()", "", f"{T_MTDA}::test_objective_never_decreases_rotations_stay_orthogonal_and_p_is_the_pooled_optimum"),
  # cross-stitch, NDDR-CNN, columns and the budget
  ("cross-stitch: mixing frozen", "src/hetmtl/methods/cross_stitch.py", "nn.Parameter(init[:, :, None].repeat(1, 1, width).clone())", "nn.Parameter(init[:, :, None].repeat(1, 1, width).clone(), requires_grad=False)", f"{T_METHODS}::test_cross_stitch_units_learn_a_hundred_times_faster"),
  ("columns: init_from a no-op", "src/hetmtl/methods/columns.py", "        self.nets.load_state_dict(state)", "        pass", f"{T_METHODS}::test_column_methods_pretrain_inside_their_budget"),
  ("budget: pre-training not frozen", JOB, "            single.freeze_blocks(freeze_blocks)", "            pass", f"{T_METHODS}::test_column_pretraining_freezes_what_the_method_freezes"),
  ("budget: resume ignores phase", JOB, 'phase = (state or {}).get("phase", "pretrain" if P else "joint")', 'phase = "pretrain" if P else "joint"', f"{T_METHODS}::test_column_methods_resume_in_either_phase"),
  ("budget: steps computed not counted", "src/hetmtl/training/loop.py", "            steps_done += 1", "            steps_done += 0", f"{T_METHODS}::test_column_methods_pretrain_inside_their_budget"),
  ("budget: missing record accepted", "src/hetmtl/reporting/aggregate.py", "    if missing:\n        raise RecordError(f\"{spec['paper']}: runs without a logged budget", "    if False:\n        raise RecordError(f\"{spec['paper']}: runs without a logged budget", "tests/test_tables.py::test_a_table_whose_methods_had_different_budgets_is_refused"),
  ("budget: pre-training on top", JOB, "progress=progress, start_epoch=P)", "progress=progress, start_epoch=0)", f"{T_METHODS}::test_column_methods_pretrain_inside_their_budget"),
  ("budget: unequal table accepted", "src/hetmtl/reporting/aggregate.py", "    if len(set(steps.values())) != 1:", "    if False:", "tests/test_tables.py::test_a_table_whose_methods_had_different_budgets_is_refused"),
  ("nddr: unit BN at 100x", "src/hetmtl/methods/nddr_cnn.py", '"lr_mult": float(self.cfg["unit_bn_lr_mult"])', '"lr_mult": float(self.cfg["unit_lr_mult"])', f"{T_METHODS}::test_nddr_unit_batchnorm_learns_at_its_own_rate"),
  ("nddr: units see own column only", "src/hetmtl/methods/nddr_cnn.py", "        cat = torch.cat(feats, dim=1)", "        cat = torch.cat([f if j == 0 else f.detach() for j, f in enumerate(feats)], dim=1)", f"{T_METHODS}::test_nddr_units_see_every_column"),
  # soft sharing, hard sharing, weighting, the loop
  ("soft: heads and BN penalised", "src/hetmtl/methods/soft_sharing.py", "        return [p for conv in self.nets[t].shareable_convs().values() for p in conv.parameters()]", "        return list(self.nets[t].parameters())", f"{T_METHODS}::test_soft_sharing_penalises_backbone_convolutions_only"),
  ("soft: penalty scaled by half", "src/hetmtl/methods/soft_sharing.py", "        return self.gamma * total", "        return 0.5 * self.gamma * total", f"{T_METHODS}::test_soft_sharing_penalises_backbone_convolutions_only"),
  ("soft: prior weights ignored", "src/hetmtl/methods/soft_sharing.py", "total = total + self.pair_weights[i, j] * (a - b).pow(2).sum()", "total = total + 1.0 * (a - b).pow(2).sum()", f"{T_METHODS}::test_soft_sharing_weighs_each_pair_by_the_prior"),
  ("hard: prior clusters ignored", "src/hetmtl/methods/hard_sharing.py", "    if relations is None:\n        return [0] * T", "    if True:\n        return [0] * T", f"{T_METHODS}::test_hard_sharing_prior_builds_one_trunk_per_cluster"),
  ("weighting: single task weighted", "src/hetmtl/training/loop.py", "    if not method.joint:\n", "    if False:\n", f"{T_W}::test_single_task_networks_are_never_weighted"),
  ("weighting: uncertainty not optimised", "src/hetmtl/training/loop.py", 'extra = [{"params": list(weighting.parameters())}] if weighting is not None else []', "extra = []", f"{T_W}::test_uncertainty_weights_learn_and_follow_their_formula"),
  ("loop: L2 penalty dropped", "src/hetmtl/training/step.py", "            self.l2.add_to_gradients()", "            pass", f"{T_TRAIN}::test_l2_penalty_shrinks_the_weights"),
  ("loop: frozen blocks move", "src/hetmtl/methods/base.py", "                p.requires_grad_(False)", "                pass", f"{T_METHODS}::test_frozen_blocks_are_bit_identical_after_training"),
  # augmentation and ImageNet initialisation (the paper suite)
  ("augment: flip dropped", "src/hetmtl/training/augment.py", "            x = torch.where(flips[:, None, None, None], x.flip(-1), x)", "            pass", f"{T_TRAIN}::test_augmentation_crops_and_flips_on_the_uint8_batch"),
  ("augment: crop offset frozen", "src/hetmtl/training/augment.py", "rows = (oy[:, None] + torch.arange(H", "rows = (0 * oy[:, None] + torch.arange(H", f"{T_TRAIN}::test_augmentation_crops_and_flips_on_the_uint8_batch"),
  ("augment: every task flipped", "src/hetmtl/resolve.py", 'flip=tuple(suite["augment"]["flip"] and params["tasks"][t]["flip"] for t in tasks)', 'flip=tuple(suite["augment"]["flip"] for t in tasks)', f"{T_TRAIN}::test_flip_only_where_meaningful_and_imagenet_inputs"),
  ("imagenet: inputs not standardised", "src/hetmtl/data/tasks.py", "    return ((x.float().div_(255.0) - m) / s).contiguous(memory_format=torch.channels_last)", "    return x.float().div_(127.5).sub_(1.0)", f"{T_TRAIN}::test_flip_only_where_meaningful_and_imagenet_inputs"),
  ("imagenet: gray conv not summed", "src/hetmtl/models/base.py", "                value = value.sum(dim=1, keepdim=True)\n            else:", "                value = value.mean(dim=1, keepdim=True)\n            else:", f"{T_METHODS}::test_imagenet_init_loads_weights_from_the_torch_hub_cache"),
  ("imagenet: offline message no path", "src/hetmtl/models/base.py", "f\"and place it at {os.path.join(get_dir(), 'checkpoints', name)}\"", "f\"and place it somewhere\"", f"{T_METHODS}::test_imagenet_init_offline_fails_fast_naming_where_the_file_goes"),
  # reruns on edits (Snakemake's params trigger and aggregation's check)
  ("digest: method params ignored", "src/hetmtl/params/digests.py", '        return {"method": method, "training"', '        return {"method": {}, "training"', "tests/test_params.py::test_job_digest_follows_exactly_what_a_job_reads"),
  ("digest: imports not followed", "src/hetmtl/params/digests.py", '    for module in _method_imports(*_stamp(path)):\n        _method_modules(root, module, seen)', "    for module in ():\n        _method_modules(root, module, seen)", "tests/test_params.py::test_job_digest_follows_exactly_what_a_job_reads"),
  ("digest: stale receipts accepted", "src/hetmtl/reporting/collect.py", "    if stale:", "    if False:", "tests/test_tables.py::test_aggregation_refuses_receipts_of_other_parameters"),
  # the relations stage
  ("relations: test split read", "src/hetmtl/training/relations.py", '    return [history[-1][f"val_acc/{d.name}"] for d in data]', '    return [fit(method, data, cfg, data[0].y["train"].device, progress=False)["test"][f"test_acc/{d.name}"] for d in data]', "tests/test_relations.py::test_r_is_read_from_the_validation_split_never_the_test_split"),
  ("relations: alone at own steps", "src/hetmtl/training/relations.py", 'alone = _val(RELATIONS_ALONE, [d[i], d[j]], spec, c, method_cfg, freeze_blocks)', 'alone = [_val(RELATIONS_ALONE, [d[i]], spec, c, method_cfg, freeze_blocks)[0], _val(RELATIONS_ALONE, [d[j]], spec, c, method_cfg, freeze_blocks)[0]]', "tests/test_relations.py::test_alone_and_together_train_the_same_pairs_over_every_seed"),
  ("relations: pair flips misread", "src/hetmtl/training/relations.py", "flip=tuple(cfg.flip[k] for k in (i, j))", "flip=tuple(cfg.flip[k] for k in (0, 1))", "tests/test_relations.py::test_each_pair_is_augmented_with_its_own_tasks_flags"),
  ("relations: first seed only", "src/hetmtl/training/relations.py", "        for seed in seeds:", "        for seed in seeds[:1]:", "tests/test_relations.py::test_alone_and_together_train_the_same_pairs_over_every_seed"),
  # statistics and splits (issue 9)
  ("split: one split for every seed", "src/hetmtl/data/splits.py", 'return [split["seed"], run_seed] if split["per_seed"] else [split["seed"]]', 'return [split["seed"]]', "tests/test_data.py::test_each_run_seed_draws_its_own_split_of_the_same_images"),
  ("relations: one split for every seed", "src/hetmtl/training/relations.py", "            d = data(seed)\n", "            d = data(seeds[0])\n", "tests/test_relations.py::test_alone_and_together_train_the_same_pairs_over_every_seed"),
  ("ci: normal instead of t", "src/hetmtl/reporting/tables.py", "stats.t.ppf(0.5 + level / 2, n - 1)", "stats.norm.ppf(0.5 + level / 2)", "tests/test_tables.py::test_mean_std_and_best"),
  ("holm: no adjustment", "src/hetmtl/reporting/tables.py", "running = max(running, min(1.0, (m - i) * p))", "running = max(running, p)", "tests/test_tables.py::test_holm_adjusts_within_the_family_and_keeps_the_order"),
  # cheap job start (the fork server) and DVC's exact stages
  ("forkserver: caller's folder ignored", FS, '    os.chdir(request["cwd"])\n', "    pass\n", f"{T_FS}::test_a_command_through_the_server_is_the_command_in_its_own_process"),
  ("forkserver: server's environment kept", FS, '    os.environ.clear()\n    os.environ.update(request["env"])\n', "    pass\n", f"{T_FS}::test_a_command_through_the_server_is_the_command_in_its_own_process"),
  ("forkserver: exit status lost", FS, '        rc = cli.main(request["argv"], in_server=True)', '        rc = 0 * (cli.main(request["argv"], in_server=True) or 0)', f"{T_FS}::test_a_command_through_the_server_is_the_command_in_its_own_process"),
  ("forkserver: child outlives its command", FS, "    threading.Thread(target=watch, daemon=True).start()\n", "    pass\n", f"{T_FS}::test_a_killed_command_kills_its_child"),
  ("forkserver: stale code served", FS, 'h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\\0" + path.read_bytes())', 'h.update(path.relative_to(PACKAGE).as_posix().encode())', f"{T_FS}::test_the_server_follows_the_code_and_stops"),
  ("forkserver: never idles out", FS, '    server.settimeout(float(os.environ.get("HETMTL_FORKSERVER_IDLE", IDLE_SECONDS)))\n', "", f"{T_FS}::test_an_idle_server_stops"),
  ("dvc.yaml: whole methods section", DVCY, '        method = [f"methods.{key[\'method\']}"]', '        method = ["methods"]', T_RERUN),
  ("dvc.yaml: one file for every stage", DVCY, '    if "group" not in stage:\n        return ROOT_FILE', '    if True:\n        return ROOT_FILE', "tests/test_dvc_yaml.py::test_training_stages_have_a_file_per_group_and_setting"),
  ("dvc.yaml: wdir one level short", DVCY, '"/".join([".."] * (len(target.parts) - 1))', '"/".join([".."] * (len(target.parts) - 2))', "tests/test_dvc_yaml.py::test_training_stages_have_a_file_per_group_and_setting"),
  ("dvc.yaml: stray pipeline files kept", DVCY, '    return sorted({f for f in extra if f not in rendered}\n', '    return sorted(set()\n', "tests/test_dvc_yaml.py::test_a_pipeline_file_params_no_longer_give_is_stale_and_removed"),
  ("dvc.yaml: whole methods folder", DVCY, '            "deps": deps + code_paths(p.root, p.base_method(method)),', '            "deps": deps + ["src/hetmtl/methods", "src/hetmtl/models", "src/hetmtl/training"],', T_RERUN),
  ("snakemake: prepare ignores its params", "workflow/rules/data.smk", "        digest=lambda wc: P.prepare_digest(SUITE, wc.task),\n", '        digest="",\n', T_RERUN),
  ("holm: raw p rendered", "src/hetmtl/reporting/tables.py", '    pv = table.attrs.get("holm")', '    pv = table.attrs.get("pvalues")', "tests/test_tables.py::test_the_rendered_p_is_the_holm_adjusted_one"),
  # fail loudly (issue 10)
  ("divergence: loss bound off", "src/hetmtl/training/loop.py", "        if not loss <= bound:  # NaN too\n", "        if False:\n", f"{T_TRAIN}::test_a_diverged_run_with_a_finite_loss_stops_before_its_checkpoint"),
  ("divergence: bound scaled", "src/hetmtl/training/loop.py", "        bound = factor * math.log(d.num_classes)", "        bound = 10 * factor * math.log(d.num_classes)", f"{T_TRAIN}::test_a_diverged_run_with_a_finite_loss_stops_before_its_checkpoint"),
  ("divergence: epoch not checked", "src/hetmtl/training/loop.py", "        check_epoch(method, data, epoch, [metrics[f\"train_loss/{n}\"] for n in names], cfg.divergence_factor)\n", "", f"{T_TRAIN}::test_a_diverged_run_with_a_finite_loss_stops_before_its_checkpoint"),
  ("divergence: weights and statistics unchecked", "src/hetmtl/training/loop.py", "    if bad:\n        raise Diverged", "    if False:\n        raise Diverged", f"{T_TRAIN}::test_non_finite_batchnorm_statistics_stop_the_run"),
  ("params: non-finite numbers accepted", "src/hetmtl/params/load.py", "        if not math.isfinite(value):", "        if False:", "tests/test_params.py::test_degenerate_params_are_refused_before_any_job"),
  ("params: backbone unchecked", "src/hetmtl/params/checks.py", '        if suite["backbone"] not in BACKBONES:', "        if False:", "tests/test_params.py::test_degenerate_params_are_refused_before_any_job"),
  ("params: momentum 1 accepted", "src/hetmtl/params/params.schema.yaml", "momentum: {type: number, minimum: 0, exclusiveMaximum: 1}", "momentum: {type: number, minimum: 0, maximum: 1}", "tests/test_params.py::test_degenerate_params_are_refused_before_any_job"),
  ("integrity: prepared checksum not verified", "src/hetmtl/data/tasks.py", "    blob = read_verified(images, manifest[\"sha256\"][images.name], rebuild)", "    blob = images.read_bytes()", "tests/test_failures.py::test_a_flipped_byte_in_prepared_images_is_named_not_trained_on"),
  ("integrity: no checksum accepted", "src/hetmtl/data/tasks.py", '    if images.name not in manifest.get("sha256", {}):', "    if False:", "tests/test_failures.py::test_prepared_data_without_a_checksum_is_refused"),
  ("snakemake: prepare ignores its code", "src/hetmtl/params/digests.py", "        return _hash([self.prepare_inputs(suite, task), files_digest(self.root, DATA_CODE[\"prepare\"])])", "        return _hash([self.prepare_inputs(suite, task)])", "tests/test_params.py::test_data_step_digests_follow_their_code"),
  ("write: partial file left", "src/hetmtl/files.py", "            tmp.unlink(missing_ok=True)\n", "            pass\n", "tests/test_failures.py::test_a_full_disk_names_the_path_and_leaves_the_old_file"),
  ("write: path not named", "src/hetmtl/files.py", "        raise WriteError(message) from exc", "        raise", "tests/test_failures.py::test_a_full_disk_names_the_path_and_leaves_the_old_file"),
  ("write: space measured after the partial file is gone", "src/hetmtl/files.py", "        message = explain(path, exc) if _is_write_error(exc) else None\n        with contextlib.suppress(OSError):\n            tmp.unlink(missing_ok=True)\n", "        with contextlib.suppress(OSError):\n            tmp.unlink(missing_ok=True)\n        message = explain(path, exc) if _is_write_error(exc) else None\n", "tests/test_failures.py::test_a_full_disk_names_the_path_and_leaves_the_old_file"),
  ("write: bugs called write errors", "src/hetmtl/files.py", "    return isinstance(exc, OSError) or (", "    return True or (", "tests/test_failures.py::test_a_bug_in_a_writer_is_not_called_a_write_error"),
  ("write: torch's full disk unexplained", "src/hetmtl/files.py", "    elif code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < LOW_SPACE):", "    elif code in (errno.ENOSPC, errno.EDQUOT):", "tests/test_failures.py::test_a_full_disk_names_the_path_and_leaves_the_old_file"),
  ("cli: tracebacks for user errors", "src/hetmtl/cli.py", "    except (UserError, OSError) as exc:", "    except ParamsError as exc:", "tests/test_failures.py::test_user_errors_are_one_line_and_debug_shows_the_traceback"),
  ("cli: OS write errors unexplained", "src/hetmtl/cli.py", '        return files.explain(Path(exc.filename), exc, "use")', "        return str(exc)", "tests/test_failures.py::test_a_read_only_path_from_the_os_is_explained_by_the_cli"),
  # fail loudly: the store, the job lock, the Snakefile's preflight (issue 10)
  ("store: tables lose the final metrics", "src/hetmtl/tracking/receipts.py", '    return out + [(int(rec["final_step"]), dict(rec["final"]))]', "    return out", f"{T_LOST}"),
  ("store: rebuild drops the curves", "src/hetmtl/tracking/rebuild.py", '        for entry in rec["history"]:\n            log_metrics(', '        for entry in []:\n            log_metrics(', f"{T_LOST}"),
  ("store: rebuild logs twice", "src/hetmtl/tracking/rebuild.py", "        if run_id and run_id in present and _same(present[run_id], rec, path):\n            continue  # the store shows what the receipt holds\n", "", f"{T_LOST}"),
  ("store: damage not named", "src/hetmtl/tracking/mlflow_store.py", '            if any(d in text for d in DAMAGED):', "            if False:", "tests/test_tracking.py::test_a_damaged_store_is_named_with_the_recovery"),
  ("store: marker holds ids", "src/hetmtl/tracking/mlflow_store.py", 'json.dumps({"experiment": ids["experiment"], "parents": names}', 'json.dumps(ids', "tests/test_tracking.py::test_the_marker_does_not_change_with_the_store"),
  ("store: two FINISHED runs of a job", "src/hetmtl/tracking/mlflow_store.py", "            supersede(self.c, self.experiment[\"experiment_id\"], self.tags, self.run_id)", "            pass", f"{T_CRASH}"),
  ("store: supersedes another seed", "src/hetmtl/tracking/mlflow_store.py", "           and all(k in tags or k not in r.data.tags for k in KEY_TAGS)]", "           ]", "tests/test_tracking.py::test_a_finished_rerun_supersedes_the_older_finished_runs_of_its_job"),
  ("job: no lock", "src/hetmtl/files.py", "            fcntl.flock(fd, fcntl.LOCK_EX)\n", "            pass\n", "tests/test_failures.py::test_a_second_process_waits_for_the_job_lock"),
  ("job: finished job trained again", JOB, "    if done is not None:  # another process", "    if False:  # another process", f"{T_CRASH}"),
  ("job: receipt of other data counts as finished", JOB, '    if done.get("job_digest") != job_digest or done.get("params_digest") != params_digest:', '    if done.get("job_digest") != job_digest:', "tests/test_failures.py::test_a_job_is_finished_only_for_the_same_parameters_code_and_data"),
  ("job: run_job trains unlocked", JOB, '    with files.lock(run.checkpoint.with_suffix(".lock"),', '    with files.lock(run.checkpoint.with_suffix(".other"),', "tests/test_failures.py::test_run_job_trains_under_the_lock_beside_its_checkpoint"),
  ("job: crash leaves the run RUNNING", JOB, '        logger.finish("FAILED")\n', "", f"{T_CRASH}"),
  ("preflight: read-only folder passes", PF, "            problems.append(explain(probe, exc)", "            0 and problems.append(explain(probe, exc)", "tests/test_failures.py::test_preflight_names_a_folder_the_workflow_cannot_write"),
  ("preflight: archives not verified", "workflow/Snakefile", "    problems += preflight.verify_archives(P, SUITE, SOURCES)[0]\n", "", "tests/test_failures.py::test_an_archive_flipped_with_its_mtime_kept_stops_snakemake_before_any_job"),
  ("preflight: md5 compared to itself", PF, "        if actual != want:", "        if False:", "tests/test_failures.py::test_preflight_names_an_archive_flipped_with_size_and_mtime_kept"),
  ("preflight: missing archives unnamed", PF, "        if not archive.exists() and \"urls\" in source:", "        if False:", "tests/test_failures.py::test_preflight_names_every_real_archive_still_to_fetch"),
  ("preflight: a live run's locks removed", PF, "        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n", "        pass\n", "tests/test_failures.py::test_the_locks_of_a_killed_snakemake_are_released_and_a_live_ones_kept"),
  ("preflight: stale locks kept", "workflow/Snakefile", "    released = preflight.release_stale_locks(ROOT)", "    released = None", "tests/test_failures.py::test_kill_9_of_the_whole_snakemake_process_group_restarts_with_the_same_command"),
  ("preflight: old logs' errors", PF, "        if log.stat().st_mtime < since:", "        if False:", "tests/test_failures.py::test_the_error_line_of_each_failed_job_is_found_in_its_log"),
  ("params: schema errors on one indented block", "src/hetmtl/params/load.py", 'raise ParamsError("".join(f"\\nerror: {line}" if i else line for i, line in enumerate(lines)))', 'raise ParamsError("invalid parameters:\\n  " + "\\n  ".join(lines))', "tests/test_params.py::test_every_schema_error_is_one_line_naming_its_file_and_key"),
  ("snakemake: missing receipts not remade", "workflow/Snakefile", "        [str(f) for run in RUNS + SWEEP_RUNS for f in (run.receipt, run.model)],\n", "", "tests/test_failures.py::test_kill_9_of_the_whole_snakemake_process_group_restarts_with_the_same_command"),
  # issue 11: lint, the conda environment, CLI help, missing inputs named with their command
  ("workflow: a shell command reads a global", "workflow/rules/data.smk", '"hetmtl prepare --suite {params.suite}', '"hetmtl prepare --suite {SUITE}', "tests/test_workflow.py::test_snakemake_lint_is_clean"),
  ("workflow: conda env loses a pin", "scripts/conda_env.py", 'lines += [f"      - {p}" for p in pins]', 'lines += [f"      - {p}" for p in pins[1:]]', "tests/test_workflow.py::test_every_rule_names_the_conda_environment_of_the_lock"),
  ("cli: an option without help", "src/hetmtl/cli.py", 'help="no progress bars (jobs of a workflow)"', "help=None", "tests/test_failures.py::test_every_cli_option_has_help_and_the_version_is_printed"),
  ("missing input: bare FileNotFoundError", "src/hetmtl/files.py", "    if not path.exists():\n        raise MissingInput", "    if False:\n        raise MissingInput", "tests/test_failures.py::test_a_missing_input_names_the_command_that_makes_it"),
  ("missing mtal model: an empty figure", "src/hetmtl/reporting/aggregate.py", "    if run_id not in params.runs(suite):\n        return figures.empty_figure", "    if True:\n        return figures.empty_figure", "tests/test_failures.py::test_a_missing_input_names_the_command_that_makes_it"),
  ("paper suite: a stand-in key required", "src/hetmtl/params/digests.py", '"suite": {k: s.get(k) for k in ("data", "raw_dir", "images_per_class", "image_size")}}', '"suite": {k: s[k] for k in ("data", "raw_dir", "images_per_class", "image_size")}}', "tests/test_workflow.py::test_every_suite_plans_in_snakemake_and_renders_for_dvc"),
  ("paper suite: dvc params name a key it lacks", "src/hetmtl/dvc_yaml.py", 'for k in ("data", "raw_dir", "images_per_class") if k in s]', 'for k in ("data", "raw_dir", "images_per_class")]', "tests/test_workflow.py::test_every_suite_plans_in_snakemake_and_renders_for_dvc"),
  ("digests: a cached file outlives its edit", "src/hetmtl/params/digests.py", "    return str(path), st.st_mtime_ns, st.st_size", "    return str(path), 0, 0", "tests/test_params.py::test_job_digest_follows_exactly_what_a_job_reads"),
  ("relations: no line per epoch", "src/hetmtl/training/relations.py", '        print(f"{what}: {epoch_line(', '        0 and print(f"{what}: {epoch_line(', "tests/test_relations.py::test_the_relations_job_logs_one_line_per_epoch_of_every_run"),
  ("job: epoch line after the checkpoint", JOB, '        log.line(epoch_line(epoch, cfg.epochs, metrics, now - clock["last"]))\n        clock["last"] = now\n        cadence.save(ckpt_path, {**train_state, "key": ckpt_key, "run_id": logger.run_id})', '        cadence.save(ckpt_path, {**train_state, "key": ckpt_key, "run_id": logger.run_id})\n        log.line(epoch_line(epoch, cfg.epochs, metrics, now - clock["last"]))\n        clock["last"] = now', f"{T_CRASH}"),
  ("job: a failed run's log lacks its error", JOB, '                log.line(f"error: {type(exc).__name__}', '                0 and log.line(f"error: {type(exc).__name__}', f"{T_CRASH}"),
  ("missing receipt: command unnamed", "src/hetmtl/runs.py", 'f"--method {self.method} --seed {self.seed}")', 'f"")', "tests/test_failures.py::test_a_missing_input_names_the_command_that_makes_it"),
  # the report's items (issue 11): tables as HTML, figures as PNG and PDF, per-item captions
  ("report: html table not bold", "src/hetmtl/reporting/tables.py", 'np.where(bold.to_numpy(), "font-weight: bold;", "")', 'np.where(bold.to_numpy(), "", "")', "tests/test_tables.py::test_html_table_bolds_the_best_mean_of_each_column_and_is_a_page"),
  ("report: random html ids", "src/hetmtl/reporting/tables.py", ".set_table_styles(HTML_STYLE).set_uuid(uid))", ".set_table_styles(HTML_STYLE))", "tests/test_tables.py::test_html_table_bolds_the_best_mean_of_each_column_and_is_a_page"),
  ("report: latex not bold", "src/hetmtl/reporting/tables.py", 'np.where(bold.to_numpy(), "textbf:--rwrap;", "")', 'np.where(bold.to_numpy(), "", "")', "tests/test_tables.py::test_latex_and_markdown_bold_the_same_cells_as_html"),
  ("report: caption lists every item", "workflow/report/figure.rst", "{{ snakemake.params.caption }}\n", "{% for c in [snakemake.params.caption] * 2 %}* {{ c }}\n{% endfor %}", "tests/test_report.py::test_each_report_item_gets_its_own_caption"),
  ("figures: no pdf", "src/hetmtl/reporting/figures.py", "        for ext in FORMATS:", "        for ext in FORMATS[:1]:", "tests/test_report.py::test_fig8_says_which_colour_is_mtal_and_figures_come_as_png_and_pdf"),
  ("figures: task colour per panel", "src/hetmtl/reporting/figures.py", 'label=task, color=colours[task])', 'label=task)', "tests/test_report.py::test_each_task_keeps_its_colour_in_every_panel_of_fig12"),
  ("figures: fig8 without legend", "src/hetmtl/reporting/figures.py", "    fig.legend(handles=", "    0 and fig.legend(handles=", "tests/test_report.py::test_fig8_says_which_colour_is_mtal_and_figures_come_as_png_and_pdf"),
  ("figures: nothing shared, nothing shown", "src/hetmtl/reporting/figures.py", "        rows = [(cos, pair) for cos, pair in best_pairs(method, layer, max_kernels)]", "        rows = []", "tests/test_report.py::test_nothing_shared_shows_the_best_matching_pairs_marked_not_shared"),
  ("figures: best pairs across kernel shapes", "src/hetmtl/reporting/figures.py", "        if not method.comparable(layer, i, j):\n            continue", "        if False:\n            continue", "tests/test_report.py::test_nothing_shared_shows_the_best_matching_pairs_marked_not_shared"),
  ("figures: no row labels", "src/hetmtl/reporting/figures.py", "        axes[r][0].set_ylabel(label,", "        0 and axes[r][0].set_ylabel(label,", "tests/test_report.py::test_shared_kernels_are_shown_with_row_labels_and_a_colour_bar_per_row"),
  # the report's catalogue, roles from params/report.yaml, the package's floors (issue 12)
  ("layers: imports from above accepted", "tests/test_layers.py", "    return floor > own or (", "    return floor > own + 99 or (", "tests/test_layers.py::test_the_check_sees_an_import_inside_a_function_and_a_relative_one"),
  ("layers: walled neighbours open", "tests/test_layers.py", "(floor == own and entry != own_entry and own not in OPEN)", "(floor == own and False)", "tests/test_layers.py::test_the_check_sees_an_import_inside_a_function_and_a_relative_one"),
  ("layers: imports inside functions unseen", "tests/test_layers.py", "    for node in ast.walk(ast.parse(source)):", "    for node in ast.parse(source).body:", "tests/test_layers.py::test_the_check_sees_an_import_inside_a_function_and_a_relative_one"),
  ("report: reference role not from params", "src/hetmtl/reporting/aggregate.py", '    ref = params["report"]["reference"].get(setting)', '    ref = next((m for m in params["settings"][setting]["methods"] if m.startswith("mtal")), None)', "tests/test_catalogue.py::test_a_display_name_and_a_reference_changed_in_params_reach_the_written_table"),
  ("report: display names not from params", "src/hetmtl/reporting/aggregate.py", 'params.tasks_of(spec["group"]), params["report"]["display"])', 'params.tasks_of(spec["group"]))', "tests/test_catalogue.py::test_a_display_name_and_a_reference_changed_in_params_reach_the_written_table"),
  ("report: table6 shows every reading", "src/hetmtl/reporting/aggregate.py", "if s == s0 and (m in shown or params.base_method(m) in shown)]", "if s == s0]", "tests/test_catalogue.py::test_table6_shows_the_methods_params_name_and_refuses_one_without_sharing"),
  ("report: table6 of a method without sharing", "src/hetmtl/reporting/aggregate.py", '        if len(sel) and not (sel.metric == "sharing/total").any():', "        if False:", "tests/test_catalogue.py::test_table6_shows_the_methods_params_name_and_refuses_one_without_sharing"),
  ("report: fig8 colours not from params", "src/hetmtl/reporting/aggregate.py", '_note(params, suite), params["report"]["highlight"])', "_note(params, suite), {})", "tests/test_catalogue.py::test_fig8_builder_draws_every_table_with_the_display_names_of_params"),
  ("report params: reference unchecked", "src/hetmtl/params/report_checks.py", '        if setting in d["settings"] and m not in d["settings"][setting]["methods"]:', "        if False:", "tests/test_catalogue.py::test_report_params_name_methods_the_grid_has"),
  ("catalogue: figures read no models", "src/hetmtl/reporting/catalogue.py", '    if "models" in e.reads:', "    if False:", "tests/test_catalogue.py::test_every_entry_has_its_builder_a_caption_and_known_inputs"),
  ("catalogue: a figure without a rule", "workflow/Snakefile", 'FIGURES = catalogue.names(P, "figure")', 'FIGURES = catalogue.names(P, "figure")[:-1]', "tests/test_catalogue.py::test_every_catalogue_item_is_a_snakemake_job_and_in_the_dvc_report_stage"),
  ("catalogue: dvc report stage without report.yaml", DVCY, ',\n                           "params/report.yaml": ["report"]})', "})", "tests/test_catalogue.py::test_every_catalogue_item_is_a_snakemake_job_and_in_the_dvc_report_stage"),
  ("catalogue: cli help not from the catalogue", "src/hetmtl/cli.py", """help=f"{catalogue.described('table')} (hetmtl/reporting/catalogue.py)")""", 'help="a table")', "tests/test_catalogue.py::test_the_cli_help_names_every_table_and_figure_of_the_catalogue"),
  ("mtal: every pair comparable", MTAL, "        return self.task_bank[layer][i] == self.task_bank[layer][j]", "        return True", "tests/test_report.py::test_nothing_shared_shows_the_best_matching_pairs_marked_not_shared"),
  # one wildcard_constraints block, the run identity, the resolver (issue 12)
  ("snakemake: group wildcard unconstrained", "workflow/Snakefile", '    group=one_of(P["groups"]),', '    group=r"[^/]+",', "tests/test_workflow.py::test_wildcards_take_only_the_names_params_define"),
  ("snakemake: table wildcard unconstrained", "workflow/Snakefile", "    table=one_of(TABLES),", '    table=r"[^/.]+",', "tests/test_workflow.py::test_wildcards_take_only_the_names_params_define"),
  ("resolve: a run outside the grid accepted", "src/hetmtl/resolve.py", "    if run not in (params.sweep_runs(run.suite) if run.sweep else params.runs(run.suite)):", "    if False:", "tests/test_resolve.py::test_a_run_outside_the_grid_is_refused_in_one_line"),
  ("resolve: sweep value not put in", "src/hetmtl/resolve.py", '        mcfg[params["sweeps"][run.sweep]["parameter"]] = run.value', "        pass", "tests/test_resolve.py::test_a_sweep_point_resolves_with_the_swept_value_and_the_sweeps_epochs"),
  ("resolve: data not in the params digest", "src/hetmtl/resolve.py", "params_digest=_digest(run_params, data_md5,", "params_digest=_digest(run_params, {},", "tests/test_resolve.py::test_a_grid_run_resolves_to_what_its_job_reads"),
  ("resolve: a variant runs its own name", "src/hetmtl/resolve.py", "    run_class = params.base_method(run.method)", "    run_class = run.method", "tests/test_resolve.py::test_a_grid_run_resolves_to_what_its_job_reads"),
  ("runs: stale receipts listed as done", "src/hetmtl/cli.py", '            state = "done" if receipts.read(path).get("job_digest") == p.job_digest(run) else "stale"', '            state = "done"', "tests/test_resolve.py::test_hetmtl_runs_lists_each_runs_state_and_command"),
  ("params: a module's PARAMS not required", "src/hetmtl/params/load.py", '"required": list(declared),', '"required": [],', "tests/test_params.py::test_a_methods_parameters_are_declared_in_the_registry"),
  ("params: a method without a module accepted", "src/hetmtl/params/load.py", "        if spec is None:\n            raise", "        if False:\n            raise", "tests/test_params.py::test_a_methods_parameters_are_declared_in_the_registry"),
  ("params: swept values unchecked", "src/hetmtl/params/checks.py", "                for err in validator.iter_errors(entry):", "                for err in []:", "tests/test_params.py::test_a_swept_value_is_checked_against_its_parameter"),
  ("runs: a receipt without its model listed as done", "src/hetmtl/cli.py", "        if path.exists() and (p.root / run.model).exists():", "        if path.exists():", "tests/test_resolve.py::test_hetmtl_runs_lists_each_runs_state_and_command"),
  ("relations: frozen blocks not frozen", "src/hetmtl/training/relations.py", "        method.freeze_blocks(freeze_blocks)", "        pass", "tests/test_relations.py::test_the_relations_job_freezes_the_resolved_blocks"),
  ("relations: freeze_blocks not passed", "src/hetmtl/training/relations.py", "rel.method_params, list(rel.seeds), rel.freeze_blocks)", "rel.method_params, list(rel.seeds), 0)", "tests/test_relations.py::test_the_relations_job_freezes_the_resolved_blocks"),
  ("weighting: aggregation not written", W_APPLY, "grad = aggregated[offset:offset + n].view_as(grad)", "grad = grad", f"{T_W}::test_an_aggregator_acts_on_shared_coordinates_and_leaves_every_task_its_own"),
  ("weighting: aggregation scaled", W_APPLY, "grad[rows] = aggregated[offset:offset + n].view_as(grad[rows])", "grad[rows] = 2 * aggregated[offset:offset + n].view_as(grad[rows])", f"{T_W}::test_an_aggregator_acts_on_shared_coordinates_and_leaves_every_task_its_own"),
  ("weighting: task-specific gradients dropped", W_APPLY, "        if others:\n", "        if False:\n", f"{T_W}::test_an_aggregator_acts_on_shared_coordinates_and_leaves_every_task_its_own"),
  ("weighting: regulariser dropped by aggregators", W_APPLY, "        if regulariser is not None:\n            regulariser.backward()", "        if False:\n            regulariser.backward()", f"{T_W}::test_an_aggregator_adds_the_regulariser_to_every_coordinate"),
  ("weighting: draws not seeded", W_APPLY, "if self.randomised else contextlib.nullcontext()", "if False else contextlib.nullcontext()", f"{T_W}::test_random_weightings_draw_per_step_and_repeat_with_the_seed"),
  ("weighting: resume loses its state", "src/hetmtl/training/loop.py", '        weighting.restore(state["weighting_snapshot"], device)', "        pass", f"{T_W}::test_a_resumed_run_continues_the_weightings_state"),
  ("weighting: epoch history not rolled", "src/hetmtl/training/loop.py", "        weighting.end_epoch()\n", "", f"{T_W}::test_every_weighting_changes_training_and_equal_is_the_plain_loop"),
  ("weighting: loop ignores it", "src/hetmtl/training/loop.py", "    return build_weighting(cfg.weighting, dict(cfg.weighting_params), num_tasks)", '    return build_weighting("equal", {}, num_tasks)', f"{T_W}::test_every_weighting_changes_training_and_equal_is_the_plain_loop"),
  ("weighting: equal is the mean", W_REG, '"equal": ("loss", "torchjd.scalarization:Sum")', '"equal": ("loss", "torchjd.scalarization:Mean")', f"{T_W}::test_equal_weighting_reproduces_the_plain_sum_bit_for_bit"),
  ("weighting: MTAL shares every used slot", "src/hetmtl/methods/mtal.py", "rows = counts >= 2  # no slot", "rows = counts >= 1  # no slot", f"{T_W}::test_shared_parameters_are_exactly_those_two_tasks_use"),
  ("weighting: trunk BatchNorms shared", "src/hetmtl/methods/hard_sharing.py", "for p in outside_per_task(trunk)]", "for p in trunk.parameters()]", f"{T_W}::test_shared_parameters_are_exactly_those_two_tasks_use"),
  ("weighting: last unit shared", "src/hetmtl/methods/columns.py", "return [p for net in self.nets for p in net.head.parameters()] + self.stage_unit_parameters(", "return [p for net in self.nets for p in net.head.parameters()] + 0 * self.stage_unit_parameters(", f"{T_W}::test_shared_parameters_are_exactly_those_two_tasks_use"),
  ("weighting: heads aggregated", "src/hetmtl/methods/columns.py", "        return [(p, None) for p in outside_per_task(self) if id(p) not in own]", "        return [(p, None) for p in self.parameters()]", f"{T_W}::test_an_aggregator_acts_on_shared_coordinates_and_leaves_every_task_its_own"),
  ("table7: ratio to itself", "src/hetmtl/reporting/tables.py", "ratios.append(step_time(w) / step_time(reference))", "ratios.append(step_time(w) / step_time(w))", f"{T_W}::test_table7_reports_accuracy_and_the_step_time_relative_to_equal"),
  ("table7: CI dropped", "src/hetmtl/reporting/tables.py", '            row[(label, "ci")] = ci_halfwidth(acc.to_numpy())', '            row[(label, "ci")] = 0.0', f"{T_W}::test_table7_reports_accuracy_and_the_step_time_relative_to_equal"),
  ("sweep: value text misread", "src/hetmtl/params/sweeps.py", "(not isinstance(value, str) and _float(text) == value)", "(not isinstance(value, str) and _float(text) == round(value))", "tests/test_params.py::test_a_sweep_value_is_read_back_from_its_text"),
  ("weighting: Nash-MTL solver not rebuilt on resume", W_APPLY, 'if callable(rebuild) and getattr(module, "step", 0):', "if False:", f"{T_W}::test_a_resumed_run_continues_the_weightings_state"),
  ("weighting: step seed ignores the epoch", "src/hetmtl/training/step.py", "return (seed * 1_000_003 + epoch) * 1_000_003 + step", "return seed * 1_000_003 + step", f"{T_W}::test_pcgrad_draws_its_order_from_the_steps_seed"),
  ("weighting: PCGrad's order not seeded", W_REG, 'RANDOMISED = frozenset({"rlw", "random", "pcgrad", "gradvac"})', 'RANDOMISED = frozenset({"rlw", "random", "gradvac"})', f"{T_W}::test_pcgrad_draws_its_order_from_the_steps_seed"),
  ("weighting: CAGrad's c ignored", W_REG, "    kwargs = dict(params)\n", "    kwargs = {k: (0.0 if k == 'c' else v) for k, v in params.items()}\n", f"{T_W}::test_cagrad_with_c_zero_is_the_mean_and_its_c_reaches_it"),
  ("weighting: IMTL-G mapped to UPGrad", W_REG, '"imtl_g": ("gradient", "torchjd.aggregation:IMTLG")', '"imtl_g": ("gradient", "torchjd.aggregation:UPGrad")', f"{T_W}::test_imtl_g_projects_equally_on_every_task_gradient"),
  ("weighting: Nash-MTL mapped to MGDA", W_REG, '"nash_mtl": ("gradient", "torchjd.aggregation:NashMTL")', '"nash_mtl": ("gradient", "torchjd.aggregation:MGDA")', f"{T_W}::test_balancing_aggregators_equalise_orthogonal_tasks"),
  ("table7: ratio of pooled means", "src/hetmtl/reporting/tables.py", "            row[(f\"{sweep} step time\", \"ratio\")] = float(np.mean(ratios))", "            row[(f\"{sweep} step time\", \"ratio\")] = float(np.max(ratios))", f"{T_W}::test_table7_reports_accuracy_and_the_step_time_relative_to_equal"),
  # the paper's claims, checked (issue 14)
  ("claims: holm dropped", CLAIMS, "    adjusted = holm({i: 1.0 if pd.isna(c.p) else c.p for i, c in enumerate(comparisons)})", "    adjusted = {i: 1.0 if pd.isna(c.p) else c.p for i, c in enumerate(comparisons)}", f"{T_CLAIMS}::test_holm_corrects_within_a_claim"),
  ("claims: direction ignored", CLAIMS, "        return 1 if self.effect > 0 else -1", "        return 1", f"{T_CLAIMS}::test_a_verdict_flips_from_supported_to_contradicted_when_the_logged_metrics_change"),
  ("claims: most read as any", CLAIMS, '    "most": lambda n: n // 2 + 1,', '    "most": lambda n: 1,', f"{T_CLAIMS}::test_most_means_more_than_half_of_the_comparisons"),
  ("claims: most read as half", CLAIMS, '    "most": lambda n: n // 2 + 1,', '    "most": lambda n: n // 2,', f"{T_CLAIMS}::test_most_means_more_than_half_of_the_comparisons"),
  ("claims: all read as most", CLAIMS, '    "all": lambda n: n,', '    "all": lambda n: n // 2 + 1,', f"{T_CLAIMS}::test_all_needs_every_comparison_and_one_significant_loss_contradicts"),
  ("claims: inconclusive branch removed", CLAIMS, "        if pd.isna(self.p_adj) or self.p_adj >= alpha or self.effect == 0:", "        if pd.isna(self.p_adj) or self.effect == 0:", f"{T_CLAIMS}::test_a_verdict_is_inconclusive_when_the_ci_spans_zero"),
  ("claims: the strongest comparison decides", CLAIMS, "    deciding = ordered[need - 1]", "    deciding = ordered[0]", f"{T_CLAIMS}::test_most_means_more_than_half_of_the_comparisons"),
  ("claims: readings ignored", CLAIMS, "            ctx = Context(params, suite, records, sweeps, histories, reading, relations)", "            ctx = Context(params, suite, records, sweeps, histories, {}, relations)", f"{T_CLAIMS}::test_each_mtal_reading_gets_its_own_row_and_its_own_runs"),
  ("claims: short runs count as converged", CLAIMS, "                    at = math.ceil(claim[\"steps\"] / spe[seed])", "                    at = min(math.ceil(claim[\"steps\"] / spe[seed]), epochs[-1])", f"{T_CLAIMS}::test_sweep_loss_and_compression_claims"),
  ("claims: params unchecked", "src/hetmtl/params/load.py", "    claims_checks(merged, files)\n", "", f"{T_CLAIMS}::test_a_claim_params_cannot_read_is_one_line_naming_file_and_key"),
  # the tuning stage (issue 13): an equal random search per method on the validation split
  ("tune: best by the lowest val acc", TUNE, 'best = max(range(len(trials)), key=lambda k: (trials[k]["score"], -k))', 'best = min(range(len(trials)), key=lambda k: (trials[k]["score"], k))', f"{T_TUNE}::test_the_best_trial_is_the_highest_mean_validation_accuracy_and_a_failed_one_never"),
  ("tune: a failed trial can be the choice", TUNE, '    if not math.isfinite(trials[best]["score"]):', "    if False:", f"{T_TUNE}::test_the_best_trial_is_the_highest_mean_validation_accuracy_and_a_failed_one_never"),
  ("tune: chosen on the test split", TUNE, 'base.freeze_blocks, test=False)\n    else:\n        result = method.fit_closed_form(data, test=False)\n    return {k: v for k, v in result["history"][-1].items() if k.startswith("val_acc/")}', 'base.freeze_blocks, test=True)\n    else:\n        result = method.fit_closed_form(data, test=True)\n    return {"val_acc/mean": result["test"]["test_acc/mean"]}', f"{T_TUNE}::test_the_tune_job_runs_with_a_test_split_that_raises_when_touched"),
  ("tune: fit evaluates test anyway", "src/hetmtl/training/loop.py", "    if test:  # a tune trial", "    if True:  # a tune trial", f"{T_TUNE}::test_a_trial_never_reads_the_test_split"),
  ("tune: chosen values not reaching training", "src/hetmtl/resolve.py", '        mcfg.update({k: v for k, v in tuned.items() if k != "lr"})', "        pass", f"{T_TUNE}::test_tune_through_snakemake_chooses_on_validation_and_the_seeds_train_with_the_choice"),
  ("tune: chosen lr not reaching training", "src/hetmtl/resolve.py", '            cfg = replace(cfg, lr=tuned["lr"])', "            pass", f"{T_TUNE}::test_tune_through_snakemake_chooses_on_validation_and_the_seeds_train_with_the_choice"),
  ("tune: choice not recorded with the run", "src/hetmtl/resolve.py", '        run_params["tuned"] = dict(tuned)', "        pass", f"{T_TUNE}::test_tune_through_snakemake_chooses_on_validation_and_the_seeds_train_with_the_choice"),
  ("tune: the seed of sampling ignored", "src/hetmtl/params/tune.py", "    key = json.dumps([seed, group, setting, method, trial])", "    key = json.dumps([0, group, setting, method, trial])", f"{T_TUNE}::test_trials_are_drawn_from_the_seed_and_the_cell_alone_the_same_number_for_every_method"),
  ("tune: N not equal across methods", "src/hetmtl/params/tune.py", 'for k in range(1, scale["trials"])]\n        return [self.tune_defaults(suite, method), *drawn][:scale["trials"]]', 'for k in range(1, max(2, scale["trials"] * len(space) // 2))]\n        return [self.tune_defaults(suite, method), *drawn]', f"{T_TUNE}::test_trials_are_drawn_from_the_seed_and_the_cell_alone_the_same_number_for_every_method"),
  ("tune: a searched key outside PARAMS accepted", "src/hetmtl/params/checks.py", "            if key not in declared:", "            if False:", f"{T_TUNE}::test_a_search_space_outside_the_methods_params_fails_naming_its_declaration"),
  ("tune: trials 0 still a job input", "src/hetmtl/params/digests.py", '        if run.sweep is None and self.tunes(run.suite):', "        if run.sweep is None:", f"{T_TUNE}::test_trials_zero_changes_nothing"),
  ("tune: train jobs not after their tune job (dvc)", DVCY, '        if (group, setting, method) in tuned:  # the values its tune stage chose', "        if False:", f"{T_TUNE}::test_trials_zero_changes_nothing"),
  ("tune: search space not in the tune digest", "src/hetmtl/params/digests.py", '"search": self.search_space(method), "tune": self.suite(suite)["tune"]}', '"tune": self.suite(suite)["tune"]}', f"{T_TUNE}::test_an_edit_of_the_search_space_or_of_n_reruns_exactly_the_tune_jobs_and_their_training"),
  ('claims: prior_gain direction reversed', CLAIMS, '                                 ctx.cell(with_prior, a), ctx.cell(without, b)))', '                                 ctx.cell(without, b), ctx.cell(with_prior, a)))', f"{T_CLAIMS}::test_prior_gain_reads_the_prior_table_minus_the_no_prior_table"),
  ('claims: task_gain on the mean', CLAIMS, '            metric = f"test_acc/{task}"', '            metric = ACC', f"{T_CLAIMS}::test_task_gain_reads_each_named_tasks_accuracy"),
  ('claims: pooling dropped', CLAIMS, '    if not claim.get("pool"):', '    if True:', f"{T_CLAIMS}::test_pool_compares_the_mean_over_the_tables_per_seed"),
  ('claims: unpaired test', CLAIMS, '    return Comparison(label, (a[0][common] - b[0][common]).sort_index(), a[1] | b[1])', '    return Comparison(label, (a[0][common] - b[0][common].mean()).sort_index(), a[1] | b[1])', f"{T_CLAIMS}::test_the_test_is_paired_and_the_interval_a_student_t_interval"),
  ('claims: CI with a z quantile', 'src/hetmtl/reporting/tables.py', '    return float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))', '    return float(stats.norm.ppf(0.5 + level / 2) * values.std(ddof=1) / np.sqrt(n))', f"{T_CLAIMS}::test_the_test_is_paired_and_the_interval_a_student_t_interval"),
  ('claims: zero-spread p = 0 restored', CLAIMS, '            return 2.0 ** (1 - len(d))  # exact sign-flip test', '            return 0.0  # exact sign-flip test', f"{T_CLAIMS}::test_zero_spread_uses_the_sign_flip_test_unless_the_claim_declares_it_deterministic"),
  ('claims: C10 epoch off by one', CLAIMS, '                    if at <= epochs[0]:', '                    at += 1\n                    if at <= epochs[0]:', f"{T_CLAIMS}::test_converged_within_reads_the_epoch_that_ends_at_or_after_the_step"),
  ('claims: C10 first epoch read as step 150', CLAIMS, '                    if at <= epochs[0]:', '                    if False:', f"{T_CLAIMS}::test_converged_within_gives_no_test_when_an_epoch_exceeds_the_step_or_the_curve_is_flat"),
  ('claims: NaN seeds kept', CLAIMS, '        if len(bad):', '        if False:', f"{T_CLAIMS}::test_a_diverged_seed_is_dropped_with_a_note_and_untested_comparisons_count_in_holm"),
  ('claims: untested comparisons left out of Holm', CLAIMS, '    adjusted = holm({i: 1.0 if pd.isna(c.p) else c.p for i, c in enumerate(comparisons)})', '    adjusted = holm({i: c.p for i, c in enumerate(comparisons)})', f"{T_CLAIMS}::test_a_diverged_seed_is_dropped_with_a_note_and_untested_comparisons_count_in_holm"),
  ('claims: most never contradicted', CLAIMS, '    verdict = {1: SUPPORTED, -1: CONTRADICTED, 0: INCONCLUSIVE}[deciding.outcome(alpha)]', '    verdict = {1: SUPPORTED, -1: INCONCLUSIVE if need < len(comparisons) else CONTRADICTED, 0: INCONCLUSIVE}[deciding.outcome(alpha)]', f"{T_CLAIMS}::test_most_is_contradicted_when_at_least_half_fail_significantly"),
  ('claims: exclude ignored', CLAIMS, '        return [m for m in rows if m not in exclude and m not in ctx.params["claims"].get("exclude", [])]', '        return [m for m in rows if m not in exclude]', f"{T_CLAIMS}::test_other_methods_are_the_papers_rows_only"),
  ('claims: C8 values swapped', CLAIMS, '    for g, (v, w) in claim["prefers"].items():', '    for g, (w, v) in claim["prefers"].items():', f"{T_CLAIMS}::test_sweep_loss_and_compression_claims"),
  ('claims: C8 missing value tested anyway', CLAIMS, '        if missing:\n', '        if False:\n', f"{T_CLAIMS}::test_sweep_loss_and_compression_claims"),
  ('claims: histories never loaded', CLAIMS, '    "converged_within": Kind(converged_within, frozenset({"histories"})),', '    "converged_within": Kind(converged_within),', f"{T_CLAIMS}::test_the_loss_histories_are_loaded_for_the_kinds_that_read_them"),
  ('claims: below metric unchecked', 'src/hetmtl/params/report_checks.py', '            if c["metric"] not in known:', '            if False:', f"{T_CLAIMS}::test_a_claim_params_cannot_read_is_one_line_naming_file_and_key"),
  ('claims: prior_gain tables unchecked', 'src/hetmtl/params/report_checks.py', '                if (tp["setting"], tn["setting"]) != ("prior", "no_prior") or tp["group"] != tn["group"]:', '                if False:', f"{T_CLAIMS}::test_a_claim_params_cannot_read_is_one_line_naming_file_and_key"),
  ('claims: zero comparisons pass', 'src/hetmtl/params/report_checks.py', '        if _claim_comparisons(d, c) == 0:', '        if False:', f"{T_CLAIMS}::test_a_claim_params_cannot_read_is_one_line_naming_file_and_key"),
  # hetmtl bench (issue 15): the cost model, the counts, the timed and the bare step
  ("bench: an aggregator's step has one backward", EST, "    joint_step = shape.joint.step_with(T, gradient)", "    joint_step = shape.joint.step_with(1, gradient)", f"{T_BENCH}::test_a_job_costs_its_largest_tasks_steps_its_pretraining_its_aggregator_and_its_evaluation"),
  ("bench: every weighting costed as an aggregator", EST, '    gradient = METHODS[resolved.method_class].joint and WEIGHTINGS[cfg.weighting][0] == "gradient"', "    gradient = METHODS[resolved.method_class].joint", f"{T_BENCH}::test_a_job_costs_its_largest_tasks_steps_its_pretraining_its_aggregator_and_its_evaluation"),
  ("bench: pre-training costed at the joint step", EST, "    pre_step = shape.pretrain.step if shape.pretrain is not None else 0", "    pre_step = shape.joint.step", f"{T_BENCH}::test_a_job_costs_its_largest_tasks_steps_its_pretraining_its_aggregator_and_its_evaluation"),
  ("bench: the epoch set by the smallest task", EST, "    S = max(math.ceil(", "    S = min(math.ceil(", f"{T_BENCH}::test_a_job_costs_its_largest_tasks_steps_its_pretraining_its_aggregator_and_its_evaluation"),
  ("bench: test evaluated every epoch", EST, '        + evaluation(shape.joint, "test")', '        + E * evaluation(shape.joint, "test")', f"{T_BENCH}::test_the_estimate_scales_linearly_with_epochs_and_seeds"),
  ("bench: validation not costed", EST, '(E - P) * evaluation(shape.joint, "val")', '0 * evaluation(shape.joint, "val")', f"{T_BENCH}::test_a_job_costs_its_largest_tasks_steps_its_pretraining_its_aggregator_and_its_evaluation"),
  ("bench: a method's jobs at another's rate", EST, '                entry["seconds"] += c.flops / rate(c)', '                entry["seconds"] += c.flops / max(rates.values())', f"{T_BENCH}::test_the_estimate_divides_each_jobs_flops_by_its_methods_rate"),
  ("bench: backward not counted", "src/hetmtl/bench/flops.py", '    bwd = counted(lambda: box["loss"].backward())', "    bwd = 0", f"{T_BENCH}::test_a_vgg16_image_counts_what_torchvision_documents"),
  ("bench: eval counted at the batch", "src/hetmtl/bench/flops.py", "            x = torch.empty(1, s.channels", "            x = torch.empty(2, s.channels", f"{T_BENCH}::test_a_vgg16_image_counts_what_torchvision_documents"),
  ("bench: bare loop without the L2 penalty", "src/hetmtl/bench/measure.py", "        if cfg.l2_lambda:\n            loss = loss + cfg.l2_lambda", "        if False:\n            loss = loss + cfg.l2_lambda", f"{T_BENCH}::test_the_timed_step_is_fits_step_and_the_bare_step_computes_the_same"),
  ("bench: bare loop ignores the method's rates", "src/hetmtl/bench/measure.py", "    opt = make_optimizer(method, cfg)  # SGD", "    opt = torch.optim.SGD(method.parameters(), lr=cfg.lr, momentum=cfg.momentum)  # SGD", f"{T_BENCH}::test_the_timed_step_is_fits_step_and_the_bare_step_computes_the_same"),
  ("bench: prepared tasks ignored", "src/hetmtl/bench/measure.py", "    if all(s.exact for s in shapes):", "    if False:", f"{T_BENCH}::test_the_bench_reads_the_prepared_tasks"),
  ("bench: H100 PCIe not known", "src/hetmtl/bench/peaks.py", '    r"\\bH100 PCIe\\b": 756.5,\n', "", f"{T_BENCH}::test_known_peaks_and_their_override"),
  ("bench: L4 matches L40", "src/hetmtl/bench/peaks.py", '    r"\\bL4\\b": 121.0,', '    r"L4": 121.0,', f"{T_BENCH}::test_known_peaks_and_their_override"),
  ("bench: MTAL's warm-up epochs costed as aggregator steps", EST, '    W = min(E - P, int(resolved.method_params.get("warmup", 0))) if gradient else 0', "    W = 0", f"{T_BENCH}::test_mtals_aggregator_jobs_cost_the_plain_step_before_its_first_matching"),
  ("bench: aggregator jobs at the equal step's rate", EST, "        return gradient_rate if c.gradient and gradient_rate else rates[c.method]", "        return rates[c.method]", f"{T_BENCH}::test_the_estimate_divides_each_jobs_flops_by_its_methods_rate"),
  ("bench: closed-form method timed silently", "src/hetmtl/bench/run.py", "        elif methods is not None:\n", "        elif False:\n", f"{T_BENCH}::test_bad_bench_arguments_get_one_line"),
  ("bench: resolve skips R although asked for inputs", "src/hetmtl/resolve.py", "(inputs or (root / paths.relations_csv(run.suite, run.group)).exists())", "(root / paths.relations_csv(run.suite, run.group)).exists()", f"{T_BENCH}::test_a_run_resolves_for_the_bench_before_its_inputs_exist"),
  ("step: NaN never checked", "src/hetmtl/training/step.py", "        if (step + 1) % cfg.nan_check_every == 0 or step + 1 == self.steps:", "        if False:", f"{T_TRAIN}::test_nan_loss_stops_the_run_with_a_message"),
  ("augment: host flag says no flip", "src/hetmtl/training/augment.py", "    return EpochAugment(offsets, flips, crop_pad, tuple(flips.any(1).tolist()))", "    return EpochAugment(offsets, flips, crop_pad, tuple([False] * steps))", f"{T_TRAIN}::test_augmentation_crops_and_flips_on_the_uint8_batch"),
  ("step: the flip decided on the device", "src/hetmtl/training/augment.py", "        if self.any_flip[step] if self.any_flip else bool(flips.any()):", "        if bool(flips.any()):", f"{T_BENCH}::test_a_step_between_nan_checks_never_waits_for_the_device"),
  ("step: NaN checked every step", "src/hetmtl/training/step.py", "        if (step + 1) % cfg.nan_check_every == 0 or step + 1 == self.steps:", "        if True:", f"{T_BENCH}::test_a_step_between_nan_checks_never_waits_for_the_device"),
  ("checkpoint: written every epoch", "src/hetmtl/training/checkpoint.py", "        if started - self.since < self.write_s / self.share:", "        if False:", f"{T_BENCH}::test_checkpoints_take_at_most_their_share_of_a_job"),
  ("checkpoint: the write's time not measured", "src/hetmtl/training/checkpoint.py", "        self.write_s = self.since - started", "        self.write_s = 0.0", f"{T_BENCH}::test_checkpoints_take_at_most_their_share_of_a_job"),
  ("checkpoint: the job skips the cadence", "src/hetmtl/training/job.py", '        cadence.save(ckpt_path, {**train_state, "key": ckpt_key, "run_id": logger.run_id})', '        pass', "tests/test_pipeline.py::test_crashed_job_leaves_no_receipt_and_resumes_from_its_checkpoint"),
  ("L2: every count read as one", "src/hetmtl/training/step.py", "                self.scaled.setdefault(float(hi), []).append(p)", "                self.scaled.setdefault(1.0, []).append(p)", f"{T_TRAIN}::test_the_closed_form_l2_gradient_is_the_penaltys_gradient"),
  ("L2: MTAL's per-row counts dropped", "src/hetmtl/training/step.py", "                self.rows.append((p, n.detach()))", "                pass", f"{T_TRAIN}::test_the_closed_form_l2_gradient_is_the_penaltys_gradient"),
  ("L2: gradient scaled by lambda, not 2 lambda", "src/hetmtl/training/step.py", "        twice = 2.0 * self.l2_lambda", "        twice = self.l2_lambda", f"{T_TRAIN}::test_the_closed_form_l2_gradient_is_the_penaltys_gradient"),
  ("L2: frozen weights penalised", "src/hetmtl/training/step.py", "        leaves = [p for p in self.method.parameters() if p.requires_grad]", "        leaves = [p for p in self.method.parameters()]", f"{T_TRAIN}::test_the_closed_form_l2_gradient_is_the_penaltys_gradient"),
  ("L2: not recounted after a merge", "src/hetmtl/training/step.py", "            self.l2.refresh()", "            pass", f"{T_TRAIN}::test_the_l2_counts_follow_mtals_merges"),
  ("job: resumed epochs logged twice", JOB, "        again = epoch <= logged  # logged by", "        again = False and epoch <= logged  # logged by", "tests/test_pipeline.py::test_epochs_trained_again_after_an_older_checkpoint_are_logged_once"),
]
SKIP = {".venv", "data", "results", "reports", "logs", "mlruns", "mlflow.db", ".git", ".snakemake"}


def _ignore(folder, names):
    """What a clone does not hold: built and run outputs, DVC's cache and state."""
    if folder == ROOT:
        return [n for n in names if n in SKIP]
    if folder == f"{ROOT}/.dvc":
        return [n for n in names if n in ("tmp", "cache")]
    return []


def run(mutants):
    stale = [f"{name}: the text to mutate occurs {open(f'{ROOT}/{rel}').read().count(old)} times in {rel}"
             for name, rel, old, _, _ in mutants if open(f"{ROOT}/{rel}").read().count(old) != 1]
    if stale:  # said before the first mutant runs, not after an hour
        raise SystemExit("\n".join(stale))
    caught = 0
    for name, rel, old, new, test in mutants:
        d = f"{SCRATCH}/m"
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(ROOT, d, ignore=_ignore)
        src = open(f"{d}/{rel}").read()
        if src.count(old) != 1:
            raise SystemExit(f"{name}: the text to mutate occurs {src.count(old)} times in {rel}: {old!r}")
        open(f"{d}/{rel}", "w").write(src.replace(old, new, 1))
        # a repository, so that the end-to-end tests copy "what a clone holds" (git ls-files)
        subprocess.run(["git", "init", "-q"], cwd=d, check=True)
        env = dict(os.environ, PYTHONPATH=f"{d}/src")
        # every named test runs, whatever tier its markers put it in (the slow tier's end-to-end runs included)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "", test],
                           cwd=d, env=env, capture_output=True, text=True)
        if r.returncode == 5:  # nothing ran: a mutant is caught by a failing test, never by an empty selection
            raise SystemExit(f"{name}: {test} selects no test")
        ok = r.returncode != 0
        caught += ok
        print(f"{name:36s} {'CAUGHT' if ok else 'MISSED'}  ({test.split('::')[1]})", flush=True)
    return caught


if __name__ == "__main__":
    if sys.argv[1:2] == ["--baseline"]:  # the tests unmutated, in the same kind of copy: they must pass
        picks = sys.argv[2:] or [""]
        tests = sorted({m[4] for m in DATA + MECHANISMS if any(p in m[0] for p in picks)})
        d = f"{SCRATCH}/m"
        shutil.copytree(ROOT, d, ignore=_ignore)
        subprocess.run(["git", "init", "-q"], cwd=d, check=True)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "", *tests], cwd=d,
                           env=dict(os.environ, PYTHONPATH=f"{d}/src"))
        shutil.rmtree(SCRATCH, ignore_errors=True)
        sys.exit(r.returncode)
    picks = sys.argv[1:] or [""]
    mutants = [m for m in DATA + MECHANISMS if any(p in m[0] for p in picks)]
    caught = run(mutants)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    print(f"caught {caught}/{len(mutants)}")
    sys.exit(0 if caught == len(mutants) else 1)
