//! Environment classes and projects: what admins set up for members to start from.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::context::{Json, Paging, Query, UserCaller};
use super::{ApiError, App};
use crate::audit::Outcome;
use crate::model::{
    EnvPhase, Environment, EnvironmentClass, Page, Project, Secret, SecretScope, Task,
};
use crate::rbac::Permission;
use crate::store::{keys, Txn};
use crate::{ids, validate};
use airlock_api::{CreateClass, CreateProject, IdeSettings, NetworkNarrowing, UpdateClass, UpdateProject};

/// 409 if another object of `kind` in the org already has `name`.
fn unique_name<T: serde::de::DeserializeOwned>(
    tx: &Txn<'_>,
    org: &str,
    kind: &str,
    name: &str,
    except: &str,
    get: impl Fn(&T) -> (&str, &str),
) -> Result<(), ApiError> {
    for (_, item) in tx.scan_all::<T>(&keys::obj_prefix(org, kind))? {
        let (id, other) = get(&item);
        if other == name && id != except {
            return Err(ApiError::Conflict(format!(
                "a {kind} named `{name}` already exists (id {id})"
            )));
        }
    }
    Ok(())
}

pub async fn list_classes(
    State(app): State<App>,
    caller: UserCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<EnvironmentClass>>, ApiError> {
    caller
        .require(&app, Permission::ReadInventory, "class.list", "classes")
        .await?;
    Ok(axum::Json(app.list(
        &caller.org.id,
        "class",
        &paging,
        |_: &EnvironmentClass| true,
        |c| c,
    )?))
}

pub async fn get_class(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<EnvironmentClass>, ApiError> {
    let class = app.find(&caller.org.id, "class", &id)?;
    caller
        .require(
            &app,
            Permission::ReadInventory,
            "class.get",
            &format!("class/{id}"),
        )
        .await?;
    Ok(axum::Json(class))
}

pub async fn create_class(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateClass>,
) -> Result<(StatusCode, axum::Json<EnvironmentClass>), ApiError> {
    caller
        .require(&app, Permission::ManageInventory, "class.create", "classes")
        .await?;
    validate::name(&req.name).map_err(|m| ApiError::invalid("name", m))?;
    validate::resources(&req.resources).map_err(|m| ApiError::invalid("resources", m))?;
    let now = app.now();
    let class = EnvironmentClass {
        id: ids::new_id("cls", now),
        org_id: caller.org.id.clone(),
        name: req.name,
        resources: req.resources,
        created_at: now,
        updated_at: now,
    };
    app.write(|tx| {
        unique_name(
            tx,
            &class.org_id,
            "class",
            &class.name,
            "",
            |c: &EnvironmentClass| (&c.id, &c.name),
        )?;
        tx.put(&keys::obj(&class.org_id, "class", &class.id), &class);
        tx.audit(caller.event(
            "class.create",
            &format!("class/{}", class.id),
            Outcome::Success,
            Some(class.name.clone()),
        ));
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(class)))
}

pub async fn update_class(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Json(req): Json<UpdateClass>,
) -> Result<axum::Json<EnvironmentClass>, ApiError> {
    let _: EnvironmentClass = app.find(&caller.org.id, "class", &id)?;
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "class.update",
            &format!("class/{id}"),
        )
        .await?;
    if let Some(name) = &req.name {
        validate::name(name).map_err(|m| ApiError::invalid("name", m))?;
    }
    if let Some(r) = &req.resources {
        validate::resources(r).map_err(|m| ApiError::invalid("resources", m))?;
    }
    let now = app.now();
    let class = app
        .write(|tx| {
            let key = keys::obj(&caller.org.id, "class", &id);
            let mut class: EnvironmentClass = tx
                .get(&key)?
                .ok_or_else(|| ApiError::not_found("class", &id))?;
            if let Some(name) = req.name {
                unique_name(
                    tx,
                    &class.org_id,
                    "class",
                    &name,
                    &id,
                    |c: &EnvironmentClass| (&c.id, &c.name),
                )?;
                class.name = name;
            }
            if let Some(r) = req.resources {
                class.resources = r;
            }
            class.updated_at = now;
            tx.put(&key, &class);
            tx.audit(caller.success("class.update", &format!("class/{id}")));
            Ok(class)
        })
        .await?;
    Ok(axum::Json(class))
}

pub async fn delete_class(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _: EnvironmentClass = app.find(&caller.org.id, "class", &id)?;
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "class.delete",
            &format!("class/{id}"),
        )
        .await?;
    app.write(|tx| {
        if let Some((_, p)) = tx
            .scan_all::<Project>(&keys::obj_prefix(&caller.org.id, "project"))?
            .into_iter()
            .find(|(_, p)| p.class_id == id)
        {
            return Err(ApiError::Conflict(format!(
                "project `{}` ({}) uses this class; change or delete it first",
                p.name, p.id
            )));
        }
        tx.delete(&keys::obj(&caller.org.id, "class", &id));
        tx.audit(caller.success("class.delete", &format!("class/{id}")));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn check_project_fields(
    name: Option<&str>,
    repo: Option<&str>,
    image: Option<&str>,
    tasks: Option<&[Task]>,
    ide: Option<&IdeSettings>,
    network: Option<&NetworkNarrowing>,
) -> Result<(), ApiError> {
    if let Some(v) = ide {
        v.validate().map_err(|m| ApiError::invalid("ide", m))?;
    }
    if let Some(v) = network {
        v.validate().map_err(|m| ApiError::invalid("network", m))?;
    }
    if let Some(v) = name {
        validate::name(v).map_err(|m| ApiError::invalid("name", m))?;
    }
    if let Some(v) = repo {
        validate::repository_url(v).map_err(|m| ApiError::invalid("repository_url", m))?;
    }
    if let Some(v) = image {
        validate::image_reference(v).map_err(|m| ApiError::invalid("image", m))?;
    }
    if let Some(v) = tasks {
        validate::tasks(v).map_err(|m| ApiError::invalid("tasks", m))?;
    }
    Ok(())
}

fn class_exists(tx: &Txn<'_>, org: &str, class_id: &str) -> Result<(), ApiError> {
    if !crate::ids::is_plausible_id(class_id) || !tx.contains(&keys::obj(org, "class", class_id))? {
        return Err(ApiError::invalid(
            "class_id",
            format!(
                "no environment class `{class_id}` in your org; list them with GET /api/v1/classes"
            ),
        ));
    }
    Ok(())
}

pub async fn list_projects(
    State(app): State<App>,
    caller: UserCaller,
    Query(paging): Query<Paging>,
) -> Result<axum::Json<Page<Project>>, ApiError> {
    caller
        .require(&app, Permission::ReadInventory, "project.list", "projects")
        .await?;
    Ok(axum::Json(app.list(
        &caller.org.id,
        "project",
        &paging,
        |_: &Project| true,
        |p| p,
    )?))
}

pub async fn get_project(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<axum::Json<Project>, ApiError> {
    let project = app.find(&caller.org.id, "project", &id)?;
    caller
        .require(
            &app,
            Permission::ReadInventory,
            "project.get",
            &format!("project/{id}"),
        )
        .await?;
    Ok(axum::Json(project))
}

pub async fn create_project(
    State(app): State<App>,
    caller: UserCaller,
    Json(req): Json<CreateProject>,
) -> Result<(StatusCode, axum::Json<Project>), ApiError> {
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "project.create",
            "projects",
        )
        .await?;
    check_project_fields(
        Some(&req.name),
        Some(&req.repository_url),
        Some(&req.image),
        Some(&req.tasks),
        Some(&req.ide),
        Some(&req.network),
    )?;
    let now = app.now();
    let project = Project {
        id: ids::new_id("prj", now),
        org_id: caller.org.id.clone(),
        name: req.name,
        repository_url: req.repository_url,
        image: req.image,
        class_id: req.class_id,
        tasks: req.tasks,
        ide: req.ide,
        network: req.network,
        created_at: now,
        updated_at: now,
    };
    app.write(|tx| {
        class_exists(tx, &project.org_id, &project.class_id)?;
        unique_name(
            tx,
            &project.org_id,
            "project",
            &project.name,
            "",
            |p: &Project| (&p.id, &p.name),
        )?;
        tx.put(
            &keys::obj(&project.org_id, "project", &project.id),
            &project,
        );
        tx.audit(caller.event(
            "project.create",
            &format!("project/{}", project.id),
            Outcome::Success,
            Some(project.name.clone()),
        ));
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(project)))
}

pub async fn update_project(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
    Json(req): Json<UpdateProject>,
) -> Result<axum::Json<Project>, ApiError> {
    let _: Project = app.find(&caller.org.id, "project", &id)?;
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "project.update",
            &format!("project/{id}"),
        )
        .await?;
    check_project_fields(
        req.name.as_deref(),
        req.repository_url.as_deref(),
        req.image.as_deref(),
        req.tasks.as_deref(),
        req.ide.as_ref(),
        req.network.as_ref(),
    )?;
    let now = app.now();
    let project = app
        .write(|tx| {
            let key = keys::obj(&caller.org.id, "project", &id);
            let mut p: Project = tx
                .get(&key)?
                .ok_or_else(|| ApiError::not_found("project", &id))?;
            if let Some(name) = req.name {
                unique_name(tx, &p.org_id, "project", &name, &id, |p: &Project| {
                    (&p.id, &p.name)
                })?;
                p.name = name;
            }
            if let Some(class_id) = req.class_id {
                class_exists(tx, &p.org_id, &class_id)?;
                p.class_id = class_id;
            }
            p.repository_url = req.repository_url.unwrap_or(p.repository_url);
            p.image = req.image.unwrap_or(p.image);
            p.tasks = req.tasks.unwrap_or(p.tasks);
            p.ide = req.ide.unwrap_or(p.ide);
            p.network = req.network.unwrap_or(p.network);
            p.updated_at = now;
            tx.put(&key, &p);
            tx.audit(caller.success("project.update", &format!("project/{id}")));
            Ok(p)
        })
        .await?;
    Ok(axum::Json(project))
}

/// Deletes a project with no live environments, and the secrets scoped to it.
pub async fn delete_project(
    State(app): State<App>,
    caller: UserCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _: Project = app.find(&caller.org.id, "project", &id)?;
    caller
        .require(
            &app,
            Permission::ManageInventory,
            "project.delete",
            &format!("project/{id}"),
        )
        .await?;
    app.write(|tx| {
        let org = caller.org.id.clone();
        let live = tx
            .scan_all::<Environment>(&keys::obj_prefix(&org, "env"))?
            .into_iter()
            .filter(|(_, e)| e.project_id == id && e.phase != EnvPhase::Deleted)
            .count();
        if live > 0 {
            return Err(ApiError::Conflict(format!(
                "{live} environment(s) of this project are not deleted yet; delete them first"
            )));
        }
        for (key, s) in tx.scan_all::<Secret>(&keys::obj_prefix(&org, "secret"))? {
            if s.scope
                == (SecretScope::Project {
                    project_id: id.clone(),
                })
            {
                tx.delete(&key);
                tx.delete(&keys::sealed(&s.id));
                tx.audit(caller.event(
                    "secret.delete",
                    &format!("secret/{}", s.id),
                    Outcome::Success,
                    Some(format!("with project {id}")),
                ));
            }
        }
        tx.delete(&keys::obj(&org, "project", &id));
        tx.audit(caller.success("project.delete", &format!("project/{id}")));
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
