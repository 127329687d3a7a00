"""Baseline: the store as the tables' ``create_all`` made it before there were migrations.

A workspace from that time has these tables and no ``alembic_version``; it is stamped with this
revision and upgraded from here (core/store/schema.py).

Revision ID: 0001
Revises: 
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alertrule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('window_minutes', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=30), nullable=True),
    sa.Column('min_samples', sa.Integer(), nullable=False),
    sa.Column('webhook_url', sa.String(length=500), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('state_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_value', sa.Float(), nullable=True),
    sa.Column('last_evaluated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alertrule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alertrule_deployment_id'), ['deployment_id'], unique=False)

    op.create_table('deployment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('target', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('endpoint', sa.String(length=500), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('container_id', sa.String(length=80), nullable=True),
    sa.Column('image', sa.String(length=300), nullable=True),
    sa.Column('model_dir', sa.String(length=1000), nullable=True),
    sa.Column('manifest_dir', sa.String(length=1000), nullable=True),
    sa.Column('auth', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployment_model_name'), ['model_name'], unique=False)

    op.create_table('metricsnapshot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=True),
    sa.Column('process_start', sa.Float(), nullable=True),
    sa.Column('requests_json', sa.String(), nullable=False),
    sa.Column('latency_json', sa.String(), nullable=False),
    sa.Column('errors_json', sa.String(), nullable=False),
    sa.Column('predictions_json', sa.String(), nullable=False),
    sa.Column('prediction_rows', sa.Float(), nullable=False),
    sa.Column('feedback', sa.Float(), nullable=False),
    sa.Column('in_flight', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('metricsnapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_metricsnapshot_deployment_id'), ['deployment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_metricsnapshot_taken_at'), ['taken_at'], unique=False)

    op.create_table('modelversion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('artifact_file', sa.String(length=200), nullable=False),
    sa.Column('reference_file', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    sa.Column('dataset_hash', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=False),
    sa.Column('task', sa.String(length=50), nullable=False),
    sa.Column('recipe_json', sa.String(), nullable=False),
    sa.Column('plan_json', sa.String(), nullable=False),
    sa.Column('model_family', sa.String(length=100), nullable=False),
    sa.Column('params_json', sa.String(), nullable=False),
    sa.Column('metrics_json', sa.String(), nullable=False),
    sa.Column('cv_json', sa.String(), nullable=False),
    sa.Column('library_versions_json', sa.String(), nullable=False),
    sa.Column('training_seconds', sa.Float(), nullable=False),
    sa.Column('description', sa.String(), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_name', 'version')
    )
    with op.batch_alter_table('modelversion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_modelversion_model_name'), ['model_name'], unique=False)

    op.create_table('project',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_name'), ['name'], unique=True)

    op.create_table('retrainrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=True),
    sa.Column('champion_version', sa.Integer(), nullable=True),
    sa.Column('challenger_version', sa.Integer(), nullable=True),
    sa.Column('metric', sa.String(length=40), nullable=True),
    sa.Column('holdout_rows', sa.Integer(), nullable=True),
    sa.Column('champion_score', sa.Float(), nullable=True),
    sa.Column('challenger_score', sa.Float(), nullable=True),
    sa.Column('diff', sa.Float(), nullable=True),
    sa.Column('ci_low', sa.Float(), nullable=True),
    sa.Column('ci_high', sa.Float(), nullable=True),
    sa.Column('window_rows', sa.Integer(), nullable=True),
    sa.Column('window_champion_score', sa.Float(), nullable=True),
    sa.Column('window_challenger_score', sa.Float(), nullable=True),
    sa.Column('window_diff', sa.Float(), nullable=True),
    sa.Column('window_ci_low', sa.Float(), nullable=True),
    sa.Column('window_ci_high', sa.Float(), nullable=True),
    sa.Column('base_dataset_hash', sa.String(length=64), nullable=True),
    sa.Column('dataset_hash', sa.String(length=64), nullable=True),
    sa.Column('new_rows', sa.Integer(), nullable=True),
    sa.Column('source_hash', sa.String(length=64), nullable=True),
    sa.Column('policy_json', sa.String(), nullable=False),
    sa.Column('tuning_json', sa.String(), nullable=False),
    sa.Column('message', sa.String(length=2000), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_name', 'source_hash')
    )
    with op.batch_alter_table('retrainrun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retrainrun_model_name'), ['model_name'], unique=False)

    op.create_table('retraintrigger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('on_drift_alert', sa.Boolean(), nullable=False),
    sa.Column('on_performance_alert', sa.Boolean(), nullable=False),
    sa.Column('on_new_data', sa.Boolean(), nullable=False),
    sa.Column('watch_folder', sa.String(length=1000), nullable=True),
    sa.Column('budget_s', sa.Float(), nullable=True),
    sa.Column('max_trials', sa.Integer(), nullable=True),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.Column('cooldown_s', sa.Float(), nullable=False),
    sa.Column('last_triggered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('retraintrigger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retraintrigger_model_name'), ['model_name'], unique=True)

    op.create_table('alertevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('notified', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['alertrule.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alertevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alertevent_deployment_id'), ['deployment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alertevent_rule_id'), ['rule_id'], unique=False)

    op.create_table('dataset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('source', sa.String(length=2000), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('columns', sa.Integer(), nullable=False),
    sa.Column('column_types_json', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'content_hash')
    )
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_content_hash'), ['content_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_dataset_project_id'), ['project_id'], unique=False)

    op.create_table('modelalias',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('alias', sa.String(length=40), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_name', 'alias')
    )
    with op.batch_alter_table('modelalias', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_modelalias_model_name'), ['model_name'], unique=False)

    op.create_table('preparation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=True),
    sa.Column('recipe_json', sa.String(), nullable=False),
    sa.Column('plan_json', sa.String(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dataset_id')
    )
    op.create_table('trainingjob',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=100), nullable=False),
    sa.Column('request_json', sa.String(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('trials_done', sa.Integer(), nullable=False),
    sa.Column('best_score', sa.Float(), nullable=True),
    sa.Column('best_model', sa.String(length=50), nullable=True),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('warnings_json', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['modelversion.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trainingjob', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trainingjob_dataset_id'), ['dataset_id'], unique=False)

    op.create_table('jobtrial',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=50), nullable=False),
    sa.Column('params_json', sa.String(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('score_std', sa.Float(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['trainingjob.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobtrial', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobtrial_job_id'), ['job_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobtrial', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobtrial_job_id'))

    op.drop_table('jobtrial')
    with op.batch_alter_table('trainingjob', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trainingjob_dataset_id'))

    op.drop_table('trainingjob')
    op.drop_table('preparation')
    with op.batch_alter_table('modelalias', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_modelalias_model_name'))

    op.drop_table('modelalias')
    with op.batch_alter_table('dataset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dataset_project_id'))
        batch_op.drop_index(batch_op.f('ix_dataset_content_hash'))

    op.drop_table('dataset')
    with op.batch_alter_table('alertevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alertevent_rule_id'))
        batch_op.drop_index(batch_op.f('ix_alertevent_deployment_id'))

    op.drop_table('alertevent')
    with op.batch_alter_table('retraintrigger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retraintrigger_model_name'))

    op.drop_table('retraintrigger')
    with op.batch_alter_table('retrainrun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retrainrun_model_name'))

    op.drop_table('retrainrun')
    with op.batch_alter_table('project', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_name'))

    op.drop_table('project')
    with op.batch_alter_table('modelversion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_modelversion_model_name'))

    op.drop_table('modelversion')
    with op.batch_alter_table('metricsnapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_metricsnapshot_taken_at'))
        batch_op.drop_index(batch_op.f('ix_metricsnapshot_deployment_id'))

    op.drop_table('metricsnapshot')
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployment_model_name'))

    op.drop_table('deployment')
    with op.batch_alter_table('alertrule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alertrule_deployment_id'))

    op.drop_table('alertrule')
